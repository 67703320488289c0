package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
)

// Writes that must happen exactly once (a trigger, a webhook, clear-failed)
// may be accepted by any replica, while only the leader acts. The replica
// that accepts one creates a ContainerVersionRequest beside the CV; the
// leader sees it through its informer, acts on it in the CV's next sync,
// and deletes it once that sync's status write succeeded. So:
//   - a request survives a leader change: it is in the API, not in memory;
//   - the CV keeps two writers, its users and the controller's status, and
//     its resourceVersion moves only when one of them changes something;
//   - acting twice on a poll (a leader dying after the status write, before
//     the delete) costs a second poll, which finds the digest already
//     deployed or rolling out and starts nothing: one trigger, one rollout;
//   - a clear-failed request names the failure it clears (stampClearFailed),
//     so acting on it twice cannot clear a later failure of the same digest
//     and roll that digest out again.

// Requests creates requests for the leader. Every replica's HTTP handlers
// and `cvmanager release` use it, leader or not.
type Requests struct {
	client versioned.Interface
	clock  clock.Clock
	// Local, when set, hands a request to this process's controller when
	// it leads: no object is written (see Accept).
	Local LocalAcceptor
}

// LocalAcceptor takes a request in memory when this process leads the
// CV's namespace, and reports whether it did.
type LocalAcceptor interface {
	Accept(namespace, name, action, trigger, digest string) bool
}

// NewRequests creates requests with client.
func NewRequests(client versioned.Interface, clk clock.Clock) *Requests {
	return &Requests{client: client, clock: clk}
}

// TriggerPoll asks the leader to poll namespace/name now, for trigger.
func (r *Requests) TriggerPoll(ctx context.Context, namespace, name, trigger string) error {
	return r.create(ctx, namespace, name, cvv1.RequestPoll, trigger, "")
}

// TriggerPollDigest asks the leader to poll namespace/name now, for
// trigger, expecting the tag to point at digest: until the registry serves
// it, the leader re-checks briefly (a push event can arrive first).
func (r *Requests) TriggerPollDigest(ctx context.Context, namespace, name, trigger, digest string) error {
	return r.create(ctx, namespace, name, cvv1.RequestPoll, trigger, digest)
}

// ClearFailed asks the leader to forget the CV's failed digest and poll.
// The request names the failure it clears, as the CV's status shows it now
// (stampClearFailed); a CV with no failed digest gets a poll.
func (r *Requests) ClearFailed(ctx context.Context, namespace, name string) error {
	return r.create(ctx, namespace, name, cvv1.RequestClearFailed, history.TriggerClearFailed, "")
}

// create makes the request, owned by the CV so it goes with it. The CV is
// read first: a request for a CV that does not exist is a NotFound error.
func (r *Requests) create(ctx context.Context, namespace, name, action, trigger, digest string) error {
	if r.Local != nil && r.Local.Accept(namespace, name, action, trigger, digest) {
		return nil
	}
	cv, err := r.client.CvmanagerV1alpha1().ContainerVersions(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	req := requestObject(cv, cvv1.ContainerVersionRequestSpec{ContainerVersion: name, Action: action, Trigger: trigger, Digest: digest})
	stampClearFailed(req, cv)
	_, err = r.client.CvmanagerV1alpha1().ContainerVersionRequests(namespace).Create(ctx, req, metav1.CreateOptions{FieldManager: fieldManager})
	return err
}

// requestObject is a request for cv, owned by it so it goes with it.
func requestObject(cv *cvv1.ContainerVersion, spec cvv1.ContainerVersionRequestSpec) *cvv1.ContainerVersionRequest {
	return &cvv1.ContainerVersionRequest{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: requestPrefix(cv.Name), Namespace: cv.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cv, cvv1.SchemeGroupVersion.WithKind("ContainerVersion"))},
		},
		Spec: spec,
	}
}

// requestPrefix keeps generated names within the 253 characters allowed.
func requestPrefix(cv string) string {
	if len(cv) > 200 {
		cv = cv[:200]
	}
	return cv + "-"
}

// requestIndex indexes requests by the key of their CV.
const requestIndex = "cv"

func requestCVKey(obj any) ([]string, error) {
	req, ok := obj.(*cvv1.ContainerVersionRequest)
	if !ok {
		return nil, nil
	}
	return []string{req.Namespace + "/" + req.Spec.ContainerVersion}, nil
}

// watchRequests wakes a CV when a request for it arrives, noting the
// arrival: the poll that serves it must be fresher (see triggerTimes).
func (c *Controller) watchRequests(inf cache.SharedIndexInformer) {
	c.requestIndexer = inf.GetIndexer()
	_ = inf.AddIndexers(cache.Indexers{requestIndex: requestCVKey})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if req, ok := obj.(*cvv1.ContainerVersionRequest); ok {
				key := req.Namespace + "/" + req.Spec.ContainerVersion
				c.triggers.note(key, c.clock.Now())
				c.queue.Add(key)
			}
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if req, ok := obj.(*cvv1.ContainerVersionRequest); ok {
				c.handled.forget(req.UID)
			}
		},
	})
}

// pendingRequests are cv's requests not yet acted on, oldest first.
func (c *Controller) pendingRequests(cv *cvv1.ContainerVersion) []*cvv1.ContainerVersionRequest {
	out := c.local.of(namespacedKey(cv))
	var objs []any
	if c.requestIndexer != nil {
		objs, _ = c.requestIndexer.ByIndex(requestIndex, namespacedKey(cv))
	}
	for _, o := range objs {
		if req, ok := o.(*cvv1.ContainerVersionRequest); ok && !c.handled.has(req.UID) {
			out = append(out, req)
		}
	}
	slices.SortFunc(out, func(a, b *cvv1.ContainerVersionRequest) int {
		if n := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); n != 0 {
			return n
		}
		return compareStrings(a.Name, b.Name)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// newestRequest is the last of requests, nil when there is none.
func newestRequest(requests []*cvv1.ContainerVersionRequest) *cvv1.ContainerVersionRequest {
	if len(requests) == 0 {
		return nil
	}
	return requests[len(requests)-1]
}

// requestTrigger names the cause of a poll serving requests: a
// clear-failed request wins (it polls too), else the newest request's.
func requestTrigger(requests []*cvv1.ContainerVersionRequest) string {
	for _, req := range requests {
		if req.Spec.Action == cvv1.RequestClearFailed {
			return history.TriggerClearFailed
		}
	}
	if t := newestRequest(requests).Spec.Trigger; t != "" {
		return t
	}
	return history.TriggerAPI
}

// clearsFailed reports whether a request asks to forget the failed digest
// st shows: a clear-failed request for that very failure (clearsFailure).
func clearsFailed(requests []*cvv1.ContainerVersionRequest, st cvv1.ContainerVersionStatus) bool {
	for _, req := range requests {
		if req.Spec.Action == cvv1.RequestClearFailed && clearsFailure(req, st) {
			return true
		}
	}
	return false
}

// failureCleared is cv as a sync serving requests judges it: without its
// failed digest when a request clears that failure, as plan writes it.
// Both ways a new version is judged read it: the poll (pollRegistry) and
// a source's offer (fleet.Decide), so either tries the failed digest
// again. cv is not changed.
func failureCleared(cv *cvv1.ContainerVersion, requests []*cvv1.ContainerVersionRequest) *cvv1.ContainerVersion {
	if !clearsFailed(requests, cv.Status) {
		return cv
	}
	view := *cv
	view.Status.FailedDigest = ""
	return &view
}

// stampClearFailed makes a clear-failed request name the failure it
// clears, as cv's status shows it when the request is accepted:
// spec.digest is status.failedDigest, and the annotation
// cvv1.AnnotationFailedAt is status.currStatusTime, the time of that
// failed finish.
//
// Why: the leader acts on a request, writes the status (failedDigest
// cleared, the digest rolled out again) and deletes the request. A leader
// that dies between the two leaves the request behind; when the digest
// fails again, its successor would clear the new failure too and roll the
// failing digest out a second time. A stamped request clears only the
// failure it names. The digest alone does not tell the two failures apart
// (the same digest fails twice), so the time of the failure is stamped
// too: a value of the same status field, compared with itself, so no two
// clocks are compared.
//
// A CV with no failed digest gets a Poll instead (its trigger stays
// clear-failed): there is nothing to forget, and a clear-failed request
// naming no failure would clear whatever fails later.
func stampClearFailed(req *cvv1.ContainerVersionRequest, cv *cvv1.ContainerVersion) {
	if req.Spec.Action != cvv1.RequestClearFailed {
		return
	}
	st := cv.Status
	if st.FailedDigest == "" {
		req.Spec.Action = cvv1.RequestPoll
		return
	}
	req.Spec.Digest = st.FailedDigest
	if st.CurrStatusTime != nil {
		metav1.SetMetaDataAnnotation(&req.ObjectMeta, cvv1.AnnotationFailedAt, failedAt(st.CurrStatusTime))
	}
}

// failedAt formats a failure's time as the status carries it through the
// API (metav1.Time: RFC 3339, whole seconds, UTC).
func failedAt(t *metav1.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// clearsFailure reports whether the clear-failed request req clears the
// failure st shows now: the one it was stamped with (stampClearFailed).
// A request with no digest was created by a cvmanager before the stamp,
// and keeps its old meaning: it clears whatever failed digest is current.
// Any mismatch counts as spent, also one a lagging cache would show; a
// cache lags behind a failure by moments, and the user reacts to the
// failure later than that (at worst, the click is lost and made again).
func clearsFailure(req *cvv1.ContainerVersionRequest, st cvv1.ContainerVersionStatus) bool {
	if req.Spec.Digest == "" {
		return true
	}
	if req.Spec.Digest != st.FailedDigest {
		return false
	}
	at, stamped := req.Annotations[cvv1.AnnotationFailedAt]
	return !stamped || st.CurrStatusTime != nil && failedAt(st.CurrStatusTime) == at
}

// splitSpent separates the clear-failed requests whose failure is no
// longer the CV's (it was cleared already, by this request acted on by a
// leader that died before deleting it, by a success, or replaced by a
// later failure) from the requests to act on. A spent request is done: it
// is deleted with no effect, not even its poll.
func splitSpent(cv *cvv1.ContainerVersion, requests []*cvv1.ContainerVersionRequest) (live, spent []*cvv1.ContainerVersionRequest) {
	for _, req := range requests {
		if req.Spec.Action == cvv1.RequestClearFailed && !clearsFailure(req, cv.Status) {
			klog.V(2).InfoS("Dropping a clear-failed request: the failure it names is not the CV's any more",
				"request", klog.KObj(req), "cv", klog.KObj(cv), "digest", req.Spec.Digest,
				"failedAt", req.Annotations[cvv1.AnnotationFailedAt], "failedDigest", cv.Status.FailedDigest)
			spent = append(spent, req)
			continue
		}
		live = append(live, req)
	}
	return live, spent
}

// pushedDigest is the digest a push event's poll request expects the tag
// to serve, "" for any other request (a clear-failed request's digest is
// the failure it clears).
func pushedDigest(req *cvv1.ContainerVersionRequest) string {
	if req.Spec.Action != cvv1.RequestPoll {
		return ""
	}
	return req.Spec.Digest
}

// requestedBy reports whether a request came with trigger.
func requestedBy(requests []*cvv1.ContainerVersionRequest, trigger string) bool {
	for _, req := range requests {
		if req.Spec.Trigger == trigger {
			return true
		}
	}
	return false
}

// announcedByPush reports a request from a registry webhook: a verified
// push for the CV's ref (push-first coverage, pushfirst.go).
func announcedByPush(requests []*cvv1.ContainerVersionRequest) bool {
	return requestedBy(requests, history.TriggerWebhook)
}

// consumeRequests deletes requests acted on. They are remembered as handled
// until the informer sees them go, so a sync in between does not act again.
func (c *Controller) consumeRequests(ctx context.Context, requests []*cvv1.ContainerVersionRequest) {
	for _, req := range requests {
		if c.local.remove(req) {
			continue
		}
		c.handled.add(req.UID)
		err := c.cvClient.CvmanagerV1alpha1().ContainerVersionRequests(req.Namespace).Delete(ctx, req.Name,
			metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &req.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			// Left in place it is acted on again after a restart: a poll, harmless.
			klog.InfoS("Could not delete a handled request", "request", klog.KObj(req), "err", err)
		}
	}
}

// handledRequests are requests acted on whose deletion the informer has
// not shown yet.
type handledRequests struct {
	mu  sync.Mutex
	uid map[types.UID]struct{}
}

func (h *handledRequests) add(uid types.UID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.uid == nil {
		h.uid = map[types.UID]struct{}{}
	}
	h.uid[uid] = struct{}{}
}

func (h *handledRequests) has(uid types.UID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.uid[uid]
	return ok
}

func (h *handledRequests) forget(uid types.UID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.uid, uid)
}

// Accept takes a request in memory when this controller leads and watches
// the CV: the leader that answers 202 acts itself, and no object is
// written (two API writes less per trigger, on the path a burst of
// triggers takes). A standby answers through an object, which survives a
// leader change. The gap: a leader that dies between its 202 and acting
// loses the request; the new leader polls every CV whose poll is due at
// takeover (status.lastPolled is written only now and then, so most are),
// and the registry, not the request, decides what is deployed.
func (c *Controller) Accept(namespace, name, action, trigger, digest string) bool {
	if c.leading == nil || !c.leading() {
		return false
	}
	cv, err := c.cvLister.ContainerVersions(namespace).Get(name)
	if err != nil {
		return false // unknown here: the object path reports NotFound
	}
	key := namespace + "/" + name
	req := &cvv1.ContainerVersionRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "local", UID: types.UID(fmt.Sprintf("local-%d", c.local.next())),
			CreationTimestamp: metav1.Time{Time: c.clock.Now()}},
		Spec: cvv1.ContainerVersionRequestSpec{ContainerVersion: name, Action: action, Trigger: trigger, Digest: digest},
	}
	stampClearFailed(req, cv)
	c.local.add(key, req)
	c.triggers.note(key, c.clock.Now())
	c.queue.Add(key)
	return true
}

// SetLeading tells the controller how to know whether it leads (Accept).
func (c *Controller) SetLeading(leading func() bool) { c.leading = leading }

// localRequests are requests the leader accepted in memory, per CV key.
type localRequests struct {
	mu  sync.Mutex
	seq int64
	by  map[string][]*cvv1.ContainerVersionRequest
}

func (l *localRequests) next() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	return l.seq
}

func (l *localRequests) add(key string, req *cvv1.ContainerVersionRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string][]*cvv1.ContainerVersionRequest{}
	}
	l.by[key] = append(l.by[key], req)
}

// of returns a copy of key's local requests.
func (l *localRequests) of(key string) []*cvv1.ContainerVersionRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.by[key])
}

// drain takes every local request out, oldest first per CV.
func (l *localRequests) drain() []*cvv1.ContainerVersionRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*cvv1.ContainerVersionRequest
	for _, key := range slices.Sorted(maps.Keys(l.by)) {
		out = append(out, l.by[key]...)
	}
	l.by = nil
	return out
}

// handOverTimeout bounds the writes of handOver, which run after the
// controller's context is done, within the pod's termination grace.
const handOverTimeout = 5 * time.Second

// handOver writes the requests this leader took in memory and has not
// acted on as request objects, once its workers have stopped (SIGTERM, a
// lost Lease): the next leader acts on them as on any other request,
// rather than leaving them to its next poll of the CV. A leader killed
// outright cannot do this; its next poll closes that gap
// (docs/architecture.md). A request acted on twice costs a poll that
// finds nothing new.
func (c *Controller) handOver() {
	pending := c.local.drain()
	if len(pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
	defer cancel()
	for _, local := range pending {
		cv, err := c.cvLister.ContainerVersions(local.Namespace).Get(local.Spec.ContainerVersion)
		if err != nil {
			continue // deleted: nothing to act on
		}
		req := requestObject(cv, local.Spec)
		req.Annotations = local.Annotations // the failure a clear-failed request names
		_, err = c.cvClient.CvmanagerV1alpha1().ContainerVersionRequests(cv.Namespace).Create(ctx, req, metav1.CreateOptions{FieldManager: fieldManager})
		if err != nil {
			klog.ErrorS(err, "Request accepted in memory lost at hand-over; the next leader's poll of the CV finds the change", "cv", klog.KObj(cv), "action", local.Spec.Action)
			continue
		}
		klog.InfoS("Request accepted in memory handed over as an object", "cv", klog.KObj(cv), "action", local.Spec.Action, "trigger", local.Spec.Trigger)
	}
}

// remove forgets a local request; false when req is not one.
func (l *localRequests) remove(req *cvv1.ContainerVersionRequest) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := req.Namespace + "/" + req.Spec.ContainerVersion
	for i, r := range l.by[key] {
		if r.UID == req.UID {
			l.by[key] = slices.Delete(l.by[key], i, i+1)
			if len(l.by[key]) == 0 {
				delete(l.by, key)
			}
			return true
		}
	}
	return false
}
