package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestReadAccessMapsEachReadToTheCVPermissionItNeeds(t *testing.T) {
	cases := []struct {
		method, target string
		protected      bool
		verb, ns, name string
	}{
		{"GET", "/v1/cv/workloads", true, "list", "", ""},
		{"GET", "/v1/cv/workloads?namespace=prod&format=html", true, "list", "prod", ""},
		{"HEAD", "/v1/cv/workloads?namespace=prod", true, "list", "prod", ""},
		{"GET", "/v1/cv/workloads/web?namespace=prod", true, "list", "prod", ""}, // a workload's history
		{"GET", "/v1/cv/containerversions/web/history?namespace=prod", true, "get", "prod", "web"},
		{"GET", "/v1/cv/containerversions/web/other?namespace=prod", true, "list", "", ""},
		{"GET", "/v1/cv/containerversions/a/b/history?namespace=prod", true, "list", "", ""},
		{"GET", "/v1/cv/activity?namespace=prod&window=7d", true, "list", "prod", ""},
		{"GET", "/v1/cv/metrics?namespace=prod", true, "list", "prod", ""},
		{"GET", "/v1/cv/metrics", true, "list", "", ""},
		{"GET", "/ui/dashboard.js", false, "", "", ""}, // static, holds no data
		{"GET", "/v1/state", true, "list", "", ""},
		{"GET", "/v1/state?namespace=prod", true, "list", "", ""}, // the state holds every namespace
		{"GET", "/v1/cv/workloads/web/extra?namespace=prod", true, "list", "", ""},
		{"GET", "/v1/anything-new", true, "list", "", ""},
		{"POST", "/v1/trigger", false, "", "", ""},
		{"POST", "/v1/cv/workloads/web/clear-failed?namespace=prod", false, "", "", ""},
		{"GET", "/healthz", false, "", "", ""},
		{"GET", "/metrics", false, "", "", ""},
	}
	for _, c := range cases {
		attrs, protected := readAccess(httptest.NewRequest(c.method, c.target, nil))
		if protected != c.protected || attrs.Verb != c.verb || attrs.Namespace != c.ns || attrs.Name != c.name {
			t.Errorf("%s %s: protected=%v %+v, want protected=%v verb=%q namespace=%q name=%q",
				c.method, c.target, protected, attrs, c.protected, c.verb, c.ns, c.name)
		}
		if protected && (attrs.Group != "cvmanager.dev" || attrs.Resource != "containerversions") {
			t.Errorf("%s %s: asks about %s.%s", c.method, c.target, attrs.Resource, attrs.Group)
		}
	}
}

// reviewer is a fake apiserver that knows one token, whose user may list
// CVs in namespace "team" only, and counts the reviews it answers.
type reviewer struct {
	*fake.Clientset
	tokenReviews, accessReviews int
}

func newReviewer() *reviewer {
	r := &reviewer{Clientset: fake.NewClientset()}
	r.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r.tokenReviews++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		if tr.Spec.Token == "good" {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{Username: "alice", Groups: []string{"devs"}}}
		}
		return true, tr, nil
	})
	r.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r.accessReviews++
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		attrs := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "alice" && sar.Spec.Groups[0] == "devs" && attrs.Namespace == "team" && attrs.Verb == "list"
		return true, sar, nil
	})
	return r
}

func TestReadAuthAnswersAndCachesDecisions(t *testing.T) {
	api := newReviewer()
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	auth := &ReadAuth{Kube: api, TTL: 30 * time.Second, Clock: clk}
	handler := auth.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("rows")) }))
	status := func(target, header string) int {
		req := httptest.NewRequest("GET", target, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", target)
		}
		return rec.Code
	}
	checks := []struct {
		target, header string
		want           int
	}{
		{"/v1/cv/workloads?namespace=team", "", http.StatusUnauthorized},
		{"/v1/cv/workloads?namespace=team", "Basic good", http.StatusUnauthorized},
		{"/v1/cv/workloads?namespace=team", "Bearer bad", http.StatusUnauthorized},
		{"/v1/cv/workloads?namespace=team", "Bearer good", http.StatusOK},
		{"/v1/cv/workloads?namespace=team", "bearer good", http.StatusOK},
		{"/v1/cv/workloads?namespace=other", "Bearer good", http.StatusForbidden},
		{"/v1/cv/workloads", "Bearer good", http.StatusForbidden},
		{"/healthz", "", http.StatusOK},
	}
	for _, c := range checks {
		if got := status(c.target, c.header); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.target, c.header, got, c.want)
		}
	}
	tokenReviews, accessReviews := api.tokenReviews, api.accessReviews
	if tokenReviews != 4 || accessReviews != 3 {
		t.Errorf("reviews: %d token, %d access; want 4 and 3 (one per distinct token and question)", tokenReviews, accessReviews)
	}

	clk.Step(29 * time.Second)
	status("/v1/cv/workloads?namespace=team", "Bearer good")
	status("/v1/cv/workloads?namespace=team", "Bearer bad")
	if api.tokenReviews != tokenReviews || api.accessReviews != accessReviews {
		t.Errorf("decisions within the TTL were reviewed again")
	}
	clk.Step(2 * time.Second)
	status("/v1/cv/workloads?namespace=team", "Bearer good")
	if api.tokenReviews != tokenReviews+1 || api.accessReviews != accessReviews+1 {
		t.Errorf("an expired decision was reused")
	}
}

func TestReadAuthCacheStaysBounded(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	auth := &ReadAuth{Kube: newReviewer(), TTL: time.Minute, Clock: clk}
	for i := range maxCachedDecisions * 3 {
		auth.remember(decisionKey{attrs: authorizationv1.ResourceAttributes{Name: string(rune(i))}}, decision{})
		if i%maxCachedDecisions == 0 {
			clk.Step(2 * time.Minute)
		}
	}
	if n := len(auth.decisions); n > maxCachedDecisions {
		t.Fatalf("%d cached decisions, bound is %d", n, maxCachedDecisions)
	}
}

// TestReadAuthFailsClosedWhenTheAPIServerCannotBeAsked: a review error
// answers 503, serves nothing and is not remembered.
func TestReadAuthFailsClosedWhenTheAPIServerCannotBeAsked(t *testing.T) {
	api := fake.NewClientset()
	reviews := 0
	api.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		return true, nil, errors.New("connection refused")
	})
	served := false
	handler := NewReadAuth(api).Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	for range 2 {
		req := httptest.NewRequest("GET", "/v1/cv/workloads?namespace=team", nil)
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("review error answered %d, want 503", rec.Code)
		}
	}
	if served || reviews != 2 {
		t.Errorf("served=%v after review errors, %d reviews (want 2: errors are not cached)", served, reviews)
	}
}
