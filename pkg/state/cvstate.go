package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
)

// CVState is the exported state of one ContainerVersion: what the user
// declared, what last worked, and what happened. It holds no export time,
// so an unchanged CV produces identical bytes and is not rewritten.
type CVState struct {
	SchemaVersion int                       `json:"schemaVersion"`
	Namespace     string                    `json:"namespace"`
	Name          string                    `json:"name"`
	Labels        map[string]string         `json:"labels,omitempty"`
	Annotations   map[string]string         `json:"annotations,omitempty"`
	Spec          cvv1.ContainerVersionSpec `json:"spec"`
	// SuccessVersion and SuccessDigest are the last-known-good version that
	// Import pins the recreated CV to.
	SuccessVersion string `json:"successVersion,omitempty"`
	SuccessDigest  string `json:"successDigest,omitempty"`
	// CurrVersion, CurrDigest and CurrStatus are informational: what the CV
	// was doing when exported (e.g. a failed newer version).
	CurrVersion string `json:"currVersion,omitempty"`
	CurrDigest  string `json:"currDigest,omitempty"`
	CurrStatus  string `json:"currStatus,omitempty"`
	// HistoryConfigMap is the name of the history ConfigMap, History its
	// records newest first.
	HistoryConfigMap string           `json:"historyConfigMap,omitempty"`
	History          []history.Record `json:"history,omitempty"`
}

// droppedAnnotations are cluster-local bookkeeping not worth carrying over.
var droppedAnnotations = []string{"kubectl.kubernetes.io/last-applied-configuration"}

// NewCVState captures cv and its history ConfigMap (nil when it has none).
// An unreadable history is exported empty rather than failing the export.
func NewCVState(cv *cvv1.ContainerVersion, historyCM *corev1.ConfigMap) CVState {
	annotations := maps.Clone(cv.Annotations)
	for _, a := range droppedAnnotations {
		delete(annotations, a)
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	s := CVState{
		SchemaVersion: SchemaVersion, Namespace: cv.Namespace, Name: cv.Name,
		Labels: maps.Clone(cv.Labels), Annotations: annotations, Spec: *cv.Spec.DeepCopy(),
		SuccessVersion: cv.Status.SuccessVersion, SuccessDigest: cv.Status.SuccessDigest,
		CurrVersion: cv.Status.CurrVersion, CurrDigest: cv.Status.CurrDigest, CurrStatus: cv.Status.CurrStatus,
		HistoryConfigMap: history.ConfigMapName(cv),
	}
	if records, err := history.Decode(historyCM); err == nil {
		s.History = records
	}
	return s
}

// Key is where the CV's object is stored.
func (s CVState) Key() string { return ObjectKey(s.Namespace, s.Name) }

// ObjectKey is the key of the object of CV namespace/name.
func ObjectKey(namespace, name string) string {
	return CVPrefix + namespace + "/" + name + ".json"
}

// Pinned reports whether the CV has a last-known-good version to pin to.
func (s CVState) Pinned() bool { return s.SuccessDigest != "" }

// encode renders the object and its SHA-256.
func (s CVState) encode() ([]byte, string, error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("encoding %s/%s: %w", s.Namespace, s.Name, err)
	}
	data = append(data, '\n')
	return data, digestOf(data), nil
}

func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// decodeCVState parses an object and checks it is the one the manifest names.
func decodeCVState(data []byte, ref ObjectRef) (CVState, error) {
	if got := digestOf(data); got != ref.SHA256 {
		return CVState{}, fmt.Errorf("%s changed since the manifest was written (sha256 %s, manifest says %s): an export is probably running; retry", ref.Key, got, ref.SHA256)
	}
	var s CVState
	if err := json.Unmarshal(data, &s); err != nil {
		return CVState{}, fmt.Errorf("%s: %w", ref.Key, err)
	}
	if s.Namespace != ref.Namespace || s.Name != ref.Name {
		return CVState{}, fmt.Errorf("%s holds %s/%s, manifest says %s/%s", ref.Key, s.Namespace, s.Name, ref.Namespace, ref.Name)
	}
	return s, nil
}
