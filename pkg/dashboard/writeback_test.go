package dashboard

import (
	"testing"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
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
