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

// A burst of Events on a slow apiserver arrives whole. One client-go
// sender at 2 ms an Event delivered 1,002 of 3,000 here: its queue holds
// 1,000, and it drops the rest without a word. EventSenders of them keep up.
func TestABurstOfEventsOnASlowAPIServerLosesNone(t *testing.T) {
	const objects = 3000
	var stored atomic.Int64
	recorder := newShardedRecorder(slowEventsClient(t, 2*time.Millisecond, &stored), EventSenders)
	for i := range objects {
		cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: fmt.Sprintf("cv-%d", i)}}
		recorder.Event(cv, corev1.EventTypeNormal, ReasonRolloutStarted, "Rolling out")
	}
	deadline := time.Now().Add(30 * time.Second)
	for stored.Load() < objects && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := stored.Load(); got != objects {
		t.Fatalf("%d of %d Events reached the apiserver", got, objects)
	}
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
