package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
)

// Writes that must happen exactly once (a trigger, a webhook, clear-failed)
// may be accepted by any replica, while only the leader acts. The replica
// that accepts one records it on the ContainerVersion itself, in an
// annotation; the leader sees it through its CV informer, acts on it, and
// acknowledges it by removing the annotation with a JSON patch that first
// tests the value it acted on. So:
//   - a request survives a leader change: it is in the API, not in memory;
//   - a newer request written while the leader acts has another value, the
//     test fails, and it is acted on too;
//   - acting twice (a leader dying after the poll, before the ack) costs a
//     second poll, which finds the digest already deployed or rolling out
//     and starts nothing: one trigger, one rollout.
const (
	// AnnotationPollRequest asks for an immediate poll: "<trigger>/<id>",
	// or "<trigger>/<id>/<digest>" when a push event named the digest the
	// poll should find (see recheckAfter).
	AnnotationPollRequest = "cvmanager.dev/poll-request"
	// AnnotationClearFailed asks to forget status.failedDigest, then poll: "<id>".
	AnnotationClearFailed = "cvmanager.dev/clear-failed"
)

// Requests records poll and clear-failed requests on CVs. Every replica's
// HTTP handlers use it, leader or not.
type Requests struct {
	client versioned.Interface
	clock  clock.Clock
}

// NewRequests writes requests with client; ids carry clk's time.
func NewRequests(client versioned.Interface, clk clock.Clock) *Requests {
	return &Requests{client: client, clock: clk}
}

// TriggerPoll records a request to poll namespace/name now, for trigger.
func (r *Requests) TriggerPoll(ctx context.Context, namespace, name, trigger string) error {
	return r.annotate(ctx, namespace, name, AnnotationPollRequest, trigger+"/"+r.newID())
}

// TriggerPollDigest records a request to poll namespace/name now, for
// trigger, expecting the tag to point at digest: until the registry serves
// it, the leader re-checks briefly (a push event can arrive first).
func (r *Requests) TriggerPollDigest(ctx context.Context, namespace, name, trigger, digest string) error {
	value := trigger + "/" + r.newID()
	if digest != "" {
		value += "/" + digest
	}
	return r.annotate(ctx, namespace, name, AnnotationPollRequest, value)
}

// ClearFailed records a request to forget the CV's failed digest and poll.
func (r *Requests) ClearFailed(ctx context.Context, namespace, name string) error {
	return r.annotate(ctx, namespace, name, AnnotationClearFailed, r.newID())
}

func (r *Requests) newID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%d-%s", r.clock.Now().UnixNano(), hex.EncodeToString(b))
}

func (r *Requests) annotate(ctx context.Context, namespace, name, key, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
	if err != nil {
		return err
	}
	_, err = r.client.CvmanagerV1alpha1().ContainerVersions(namespace).Patch(ctx, name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// pendingRequest is the request the leader should act on for cv: the
// trigger name and the annotation (key, value) to acknowledge after. A
// clear-failed request wins over a poll request: it polls too.
func pendingRequest(cv *cvv1.ContainerVersion) (trigger, key, value string) {
	if v := cv.Annotations[AnnotationClearFailed]; v != "" {
		return history.TriggerClearFailed, AnnotationClearFailed, v
	}
	if v := cv.Annotations[AnnotationPollRequest]; v != "" {
		t, _, _ := strings.Cut(v, "/")
		if t == "" {
			t = history.TriggerAPI
		}
		return t, AnnotationPollRequest, v
	}
	return "", "", ""
}

// expectedDigest is the digest a poll request's push event named, or "".
func expectedDigest(value string) string {
	parts := strings.SplitN(value, "/", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// acknowledge removes a request annotation if it still holds value.
func (c *Controller) acknowledge(ctx context.Context, cv *cvv1.ContainerVersion, key, value string) error {
	path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
	patch, err := json.Marshal([]map[string]string{
		{"op": "test", "path": path, "value": value},
		{"op": "remove", "path": path},
	})
	if err != nil {
		return err
	}
	_, err = c.cvClient.CvmanagerV1alpha1().ContainerVersions(cv.Namespace).Patch(ctx, cv.Name, types.JSONPatchType, patch,
		metav1.PatchOptions{FieldManager: fieldManager})
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsConflict(err) || isTestFailed(err) {
		klog.V(2).InfoS("Request replaced before acknowledged; acting again", "cv", klog.KObj(cv), "key", key)
		return nil // deleted, or a newer request: its event syncs again
	}
	return err
}

// isTestFailed recognises the apiserver's answer to a failed "test" op
// (422 or 500 depending on version).
func isTestFailed(err error) bool {
	return err != nil && strings.Contains(err.Error(), "testing value")
}

// clearFailedDigest forgets status.failedDigest so the version is tried
// again (the manual override after fixing what made it fail).
func (c *Controller) clearFailedDigest(ctx context.Context, cv *cvv1.ContainerVersion) error {
	if cv.Status.FailedDigest == "" {
		return nil
	}
	cv.Status.FailedDigest = ""
	return c.updateStatus(ctx, cv)
}
