package controller

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// slowEventsClient is a client of an apiserver whose Event creates take
// perEvent each, as on a busy one, and that counts the Events it stored.
func slowEventsClient(t *testing.T, perEvent time.Duration, stored *atomic.Int64) kubernetes.Interface {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/events") {
			http.Error(w, "only Event creates here", http.StatusNotFound)
			return
		}
		time.Sleep(perEvent)
		stored.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.Copy(w, r.Body)
	}))
	t.Cleanup(srv.Close)
	kube, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

// burstOfEvents sends one Event for each of objects CVs at once through
// senders recorders whose apiserver takes 2 ms an Event, and returns how
// many it stored once all arrived or none arrived for 200 ms (a hundred
// Events' time: the senders are idle).
func burstOfEvents(t *testing.T, senders, objects int) int64 {
	var stored atomic.Int64
	recorder := newShardedRecorder(slowEventsClient(t, 2*time.Millisecond, &stored), senders)
	for i := range objects {
		cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: fmt.Sprintf("cv-%d", i)}}
		recorder.Event(cv, corev1.EventTypeNormal, ReasonRolloutStarted, "Rolling out")
	}
	last, lastChange := int64(-1), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := stored.Load()
		if n == int64(objects) || (n == last && time.Since(lastChange) >= 200*time.Millisecond) {
			return n
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
	}
	return stored.Load()
}

// A burst of Events on a slow apiserver arrives whole through EventSenders
// senders.
func TestABurstOfEventsOnASlowAPIServerLosesNone(t *testing.T) {
	if got := burstOfEvents(t, EventSenders, 3000); got != 3000 {
		t.Fatalf("%d of 3000 Events reached the apiserver", got)
	}
}

// Why there are several: one client-go sender drops, without a word, what
// does not fit its queue of 1,000 (1,002 of 3,000 arrived when this was
// written). Should client-go stop dropping, this fails and the sharding
// can go.
func TestOneClientGoSenderDropsABurstsEvents(t *testing.T) {
	got := burstOfEvents(t, 1, 3000)
	if got >= 3000 {
		t.Fatalf("one sender delivered all %d Events", got)
	}
	t.Logf("one sender delivered %d of 3000 Events", got)
}

// One object's Events always go through one sender, so they keep their
// order and client-go's aggregation sees all of them.
func TestAnObjectsEventsShareOneSender(t *testing.T) {
	var stored atomic.Int64
	recorder := newShardedRecorder(slowEventsClient(t, 0, &stored), EventSenders)
	used := map[any]bool{}
	for i := range 200 {
		cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: fmt.Sprintf("cv-%d", i)}}
		first := recorder.senderFor(cv)
		for range 3 {
			if recorder.senderFor(cv.DeepCopy()) != first {
				t.Fatalf("cv-%d's Events went through two senders", i)
			}
		}
		used[first] = true
	}
	if len(used) != EventSenders {
		t.Fatalf("200 CVs used %d of %d senders", len(used), EventSenders)
	}
}
