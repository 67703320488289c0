package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

func TestCheckProvider(t *testing.T) {
	const ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"
	cases := []struct {
		provider, repo, wantErr string
	}{
		{"", "nginx", ""},
		{"", ecr, ""},
		{"ecr", ecr, ""},
		{"dockerhub", "nginx", ""},
		{"dockerhub", "docker.io/team/app", ""},
		{"dockerhub", "127.0.0.1:5000/team/app", ""},
		{"ecr", "docker.io/team/app", "--provider ecr does not match spec.imageRepo \"docker.io/team/app\": its host index.docker.io is not an ECR registry"},
		{"ecr", "ghcr.io/team/app", "its host ghcr.io is not an ECR registry"},
		{"dockerhub", ecr, "--provider dockerhub does not match spec.imageRepo \"" + ecr + "\": its host 123456789012.dkr.ecr.eu-west-1.amazonaws.com is an ECR registry"},
	}
	for _, c := range cases {
		err := checkProvider(c.provider, c.repo)
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("checkProvider(%q, %q) = %v, want %q", c.provider, c.repo, err, c.wantErr)
		}
	}
	if err := validProvider("gcr"); err == nil || !strings.Contains(err.Error(), "use ecr or dockerhub") {
		t.Errorf("validProvider(gcr) = %v", err)
	}
}

// TestClientsSpeakProtobufForBuiltInsAndJSONForCVs: the Kubernetes client
// asks for protobuf (JSON as the fallback), the CV client for JSON, which
// is all a custom resource is served in. The request headers are read at
// an HTTP server standing in for the apiserver.
func TestClientsSpeakProtobufForBuiltInsAndJSONForCVs(t *testing.T) {
	accepts := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accepts <- r.URL.Path + " " + r.Header.Get("Accept")
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	kube, cvs, err := newClients(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = kube.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	_, _ = cvs.CvmanagerV1alpha1().ContainerVersions("ns").Get(ctx, "web", metav1.GetOptions{})
	want := []string{
		"/apis/apps/v1/namespaces/ns/deployments/web application/vnd.kubernetes.protobuf,application/json",
		"/apis/cvmanager.dev/v1alpha1/namespaces/ns/containerversions/web application/json",
	}
	for _, w := range want {
		if got := <-accepts; !strings.HasPrefix(got, w) {
			t.Errorf("request %q, want %q", got, w)
		}
	}
}
