package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/history"
)

// TestRowWriteBack: a row says where git stands on the very digest its
// workload runs, and nothing for another digest.
func TestRowWriteBack(t *testing.T) {
	image := "r/web:v1@" + digestA
	for _, tt := range []struct {
		name string
		wb   *cvv1.WriteBackStatus
		want string
	}{
		{"no write-back", nil, ""},
		{"written", &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, Digest: digestA, Commit: "5eb63bbbe01eeed093cb22bb8f5acdc3"}, "Written 5eb63bb"},
		{"pull request", &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, Digest: digestA, PullRequestURL: "https://git.example/pr/7"}, "Written https://git.example/pr/7"},
		{"pending", &cvv1.WriteBackStatus{State: cvv1.WriteBackPending, Digest: digestA}, "Pending"},
		{"failed", &cvv1.WriteBackStatus{State: cvv1.WriteBackFailed, Digest: digestA, Reason: "https://git.example/deploy.git: authentication required"},
			"Failed: https://git.example/deploy.git: authentication required"},
		{"another digest's", &cvv1.WriteBackStatus{State: cvv1.WriteBackWritten, Digest: digestB, Commit: "5eb63bb"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cv := provenanceCV("web", cvv1.ContainerVersionStatus{SuccessDigest: digestA, CurrDigest: digestA, WriteBack: tt.wb})
			if got := rowFor(cv, deployment("shop", "web", image)).WriteBack; got != tt.want {
				t.Errorf("WriteBack = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHistoryShowsWriteBack: a CV's history, as JSON and as the HTML page,
// names the commit that recorded each rollout in git.
func TestHistoryShowsWriteBack(t *testing.T) {
	srv, store := fixture(t)
	ctx := context.Background()
	cv := &cvv1.ContainerVersion{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: "uid-web"}}
	const commit = "5eb63bbbe01eeed093cb22bb8f5acdc3a1b2c3d4"
	wb := &history.WriteBack{RolloutID: "r1", State: cvv1.WriteBackWritten, Commit: commit}
	if err := store.AppendTo(ctx, cv, "frontend.history", history.Record{ID: "r1-x", Rollout: "r1", CV: "web",
		Time: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Workload: "Deployment/frontend", ToVersion: "1a2b3c4", WriteBack: wb}); err != nil {
		t.Fatal(err)
	}
	code, body := fetch(t, srv.URL+"/v1/cv/containerversions/web/history?namespace=shop")
	var records []history.Record
	if code != http.StatusOK || json.Unmarshal([]byte(body), &records) != nil || len(records) != 1 || !cmp.Equal(records[0].WriteBack, wb) {
		t.Errorf("CV history JSON: %d %s, want writeBack %+v", code, body, wb)
	}
	code, page := fetch(t, srv.URL+"/v1/cv/containerversions/web/history?namespace=shop&format=html")
	if code != http.StatusOK || !strings.Contains(page, `Written <code title="`+commit+`">5eb63bbbe01e</code>`) {
		t.Errorf("CV history page: %d, want the commit in the Git column: %.3000s", code, page)
	}
}
