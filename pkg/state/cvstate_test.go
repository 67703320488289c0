package state

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
)

func testCV() *cvv1.ContainerVersion {
	return &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "uid-1", ResourceVersion: "42",
			Labels:      map[string]string{"app": "web"},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: "registry.example.com/web", Tag: "env-prod",
			History: cvv1.HistorySpec{Enabled: true}},
		Status: cvv1.ContainerVersionStatus{SuccessVersion: "v1", SuccessDigest: "sha256:aaa",
			CurrVersion: "v2", CurrDigest: "sha256:bbb", CurrStatus: cvv1.StatusFailed, ObservedGeneration: 3},
	}
}

func TestNewCVStateKeepsWhatImportNeeds(t *testing.T) {
	records := []history.Record{{ID: "r1", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ToVersion: "v1", Outcome: history.OutcomeSuccess}}
	data, err := history.Encode(records)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{Data: data}
	tests := []struct {
		name string
		cm   *corev1.ConfigMap
		want CVState
	}{
		{"with history", cm, CVState{SchemaVersion: SchemaVersion, Namespace: "shop", Name: "web",
			Labels: map[string]string{"app": "web"}, Spec: testCV().Spec,
			SuccessVersion: "v1", SuccessDigest: "sha256:aaa", CurrVersion: "v2", CurrDigest: "sha256:bbb",
			CurrStatus: cvv1.StatusFailed, HistoryConfigMap: "web.history", History: records}},
		{"without history", nil, CVState{SchemaVersion: SchemaVersion, Namespace: "shop", Name: "web",
			Labels: map[string]string{"app": "web"}, Spec: testCV().Spec,
			SuccessVersion: "v1", SuccessDigest: "sha256:aaa", CurrVersion: "v2", CurrDigest: "sha256:bbb",
			CurrStatus: cvv1.StatusFailed, HistoryConfigMap: "web.history"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, NewCVState(testCV(), tt.cm)); diff != "" {
				t.Errorf("NewCVState (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEncodeIsStable: an unchanged CV encodes to the same bytes (so a
// continuous export does not rewrite it), and decoding checks the digest
// and the name the manifest gives.
func TestEncodeIsStable(t *testing.T) {
	s := NewCVState(testCV(), nil)
	data, sum, err := s.encode()
	if err != nil {
		t.Fatal(err)
	}
	cv := testCV()
	cv.ResourceVersion, cv.Status.ObservedGeneration = "43", 4 // bookkeeping only
	again, sum2, _ := NewCVState(cv, nil).encode()
	if sum != sum2 || string(again) != string(data) {
		t.Errorf("encoding changed with resourceVersion/observedGeneration: %s vs %s", sum, sum2)
	}
	ref := ObjectRef{Namespace: "shop", Name: "web", Key: s.Key(), SHA256: sum}
	tests := []struct {
		name    string
		data    string
		ref     ObjectRef
		wantErr string
	}{
		{"as exported", string(data), ref, ""},
		{"changed after the manifest", strings.Replace(string(data), "v1", "v9", 1), ref, "changed since the manifest"},
		{"under another name", string(data), ObjectRef{Namespace: "shop", Name: "api", Key: ref.Key, SHA256: sum}, "manifest says shop/api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCVState([]byte(tt.data), tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decode error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStaleKeys(t *testing.T) {
	ref := func(k string) ObjectRef { return ObjectRef{Key: k} }
	tests := []struct {
		name string
		prev *Manifest
		refs []ObjectRef
		want []string
	}{
		{"first export", nil, []ObjectRef{ref("cvs/a/x.json")}, nil},
		{"a CV was deleted", &Manifest{Objects: []ObjectRef{ref("cvs/a/x.json"), ref("cvs/a/y.json")}},
			[]ObjectRef{ref("cvs/a/x.json")}, []string{"cvs/a/y.json"}},
		{"nothing changed", &Manifest{Objects: []ObjectRef{ref("cvs/a/x.json")}}, []ObjectRef{ref("cvs/a/x.json")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, staleKeys(tt.prev, tt.refs)); diff != "" {
				t.Errorf("staleKeys (-want +got):\n%s", diff)
			}
		})
	}
}
