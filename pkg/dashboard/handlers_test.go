package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/workload"
)

// fakeSource serves fixed CVs and workloads.
type fakeSource struct {
	cvs       []*cvv1.ContainerVersion
	workloads []workload.Workload
}

func (f fakeSource) ContainerVersions(string) ([]*cvv1.ContainerVersion, error) { return f.cvs, nil }

func (f fakeSource) Workloads(namespace string, selector labels.Selector) ([]workload.Workload, error) {
	var out []workload.Workload
	for _, w := range f.workloads {
		if w.Namespace() == namespace && selector.Matches(labels.Set(w.Object.GetLabels())) {
			out = append(out, w)
		}
	}
	return out, nil
}

func (f fakeSource) Get(namespace, name string) (*cvv1.ContainerVersion, error) {
	for _, cv := range f.cvs {
		if cv.Namespace == namespace && cv.Name == name {
			return cv, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "containerversions"}, name)
}

func fixture(t *testing.T) (*httptest.Server, *history.Store) {
	t.Helper()
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cv := &cvv1.ContainerVersion{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "uid-web"},
		Spec: cvv1.ContainerVersionSpec{ImageRepo: "reg/web", Tag: "env-prod", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Container: cvv1.ContainerSpec{Name: "app"}},
		Status: cvv1.ContainerVersionStatus{CurrVersion: "1a2b3c4", CurrStatus: cvv1.StatusSuccess, CurrStatusTime: &metav1.Time{Time: when}},
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "frontend", Labels: map[string]string{"app": "web"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "reg/web:1a2b3c4@sha256:abc"}}}}},
		Status: appsv1.DeploymentStatus{AvailableReplicas: 2},
	}
	src := fakeSource{cvs: []*cvv1.ContainerVersion{cv}, workloads: []workload.Workload{{Kind: workload.Deployment, Object: d}}}
	store := history.NewStore(fake.NewClientset())
	mux := http.NewServeMux()
	NewHandler(src, store, src).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, store
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRowsSpeakTheOriginalFormat: the JSON row has exactly the original's
// eight keys plus the added ones, in the same style.
func TestRowsSpeakTheOriginalFormat(t *testing.T) {
	srv, _ := fixture(t)
	code, body := fetch(t, srv.URL+"/v1/cv/workloads?namespace=shop")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(body), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("rows %v: %s", err, body)
	}
	want := map[string]any{
		"Namespace": "shop", "Name": "frontend", "Type": "Deployment", "Container": "app", "Version": "1a2b3c4",
		"AvailablePods": float64(2), "CV": "web", "Tag": "env-prod",
		"Digest": "sha256:abc", "Image": "reg/web:1a2b3c4@sha256:abc", "Status": "Success", "DesiredPods": float64(3),
		"LastUpdate": "2026-01-02T03:04:05Z", "State": "Success",
	}
	if diff := cmp.Diff(want, rows[0]); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
}

// TestHistoryURLs: the original's URL answers the workload's history, the
// CV's history has its own path, and unknown names say where to look.
func TestHistoryURLs(t *testing.T) {
	srv, store := fixture(t)
	ctx := context.Background()
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "uid-web"}}
	at := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.Append(ctx, cv, history.Record{ID: "old", Time: at, Workload: "Deployment/frontend", ToVersion: "0ld0000"}))
	must(store.AppendTo(ctx, cv, "frontend.history", history.Record{ID: "r1-x", Rollout: "r1", CV: "web", Time: at.Add(time.Hour),
		Workload: "Deployment/frontend", ToVersion: "1a2b3c4"}))

	ids := func(path string) []string {
		code, body := fetch(t, srv.URL+path)
		var records []history.Record
		if code != http.StatusOK || json.Unmarshal([]byte(body), &records) != nil {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		out := []string{}
		for _, r := range records {
			out = append(out, r.ID)
		}
		return out
	}
	if got := ids("/v1/cv/workloads/frontend?namespace=shop"); !cmp.Equal(got, []string{"r1-x"}) {
		t.Errorf("workload history %v", got)
	}
	if got := ids("/v1/cv/containerversions/web/history?namespace=shop"); !cmp.Equal(got, []string{"r1", "old"}) {
		t.Errorf("CV history %v", got)
	}
	// The CV's legacy history is still readable at the old URL by its name.
	if got := ids("/v1/cv/workloads/web?namespace=shop"); !cmp.Equal(got, []string{"old"}) {
		t.Errorf("legacy history by the CV's name %v", got)
	}
	for path, want := range map[string]string{
		"/v1/cv/workloads/nothing?namespace=shop":                 "404 no managed workload shop/nothing and no history nothing.history; the history of a ContainerVersion is at /v1/cv/containerversions/%3Ccv%3E/history?namespace=shop",
		"/v1/cv/workloads/frontend":                               "400 the namespace query parameter is required",
		"/v1/cv/containerversions/nothing/history?namespace=shop": "404 no ContainerVersion shop/nothing",
	} {
		code, body := fetch(t, srv.URL+path)
		if got := strings.TrimSpace(fmt.Sprintf("%d %s", code, body)); !strings.HasPrefix(got, want) {
			t.Errorf("GET %s = %q, want %q", path, got, want)
		}
	}
	code, page := fetch(t, srv.URL+"/v1/cv/workloads/frontend?namespace=shop&format=html")
	if code != http.StatusOK || !strings.Contains(page, "History of workload shop/frontend") ||
		!strings.Contains(page, `href="/v1/cv/containerversions/web/history?namespace=shop&amp;format=html"`) {
		t.Errorf("workload history page: %d %.1500s", code, page)
	}
}
