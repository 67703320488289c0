package writeback

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

func TestCredentialsFromSecret(t *testing.T) {
	data := map[string][]byte{"token": []byte("tok\n"), "user": []byte("me"), "pass": []byte("pw"), "id": []byte("KEY"), "kh": []byte("host ssh-ed25519 AAAA")}
	cases := []struct {
		name    string
		ref     *cvv1.GitSecretRef
		want    Credentials
		wantErr string
	}{
		{"none", nil, Credentials{}, ""},
		{"token", &cvv1.GitSecretRef{Name: "s", TokenKey: "token"}, Credentials{Token: "tok"}, ""},
		{"basic", &cvv1.GitSecretRef{Name: "s", UsernameKey: "user", PasswordKey: "pass"}, Credentials{Username: "me", Password: "pw"}, ""},
		{"ssh", &cvv1.GitSecretRef{Name: "s", IdentityKey: "id", KnownHostsKey: "kh"}, Credentials{SSHKey: []byte("KEY\n"), KnownHosts: []byte("host ssh-ed25519 AAAA\n")}, ""},
		{"missing key", &cvv1.GitSecretRef{Name: "s", TokenKey: "nope"}, Credentials{}, `secret s has no key "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CredentialsFromSecret(tc.ref, data)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for attempts, want := range map[int32]time.Duration{0: 10 * time.Second, 1: 10 * time.Second, 2: 20 * time.Second, 4: 80 * time.Second, 7: 10 * time.Minute, 100: 10 * time.Minute} {
		if got := Backoff(attempts); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempts, got, want)
		}
	}
}

func TestMessage(t *testing.T) {
	req := Request{Key: "prod/web", RolloutID: "r1", ImageRepo: "reg/web", Version: "v2", Digest: "sha256:ab", FromVersion: "v1",
		Provenance: cvv1.Provenance{Revision: "abc", CILink: "https://ci.example.com/1"}}
	msg, err := req.Message()
	if err != nil {
		t.Fatal(err)
	}
	want := "Deploy prod/web to v2\n\nreg/web:v2@sha256:ab passed its rollout.\nPrevious version: v1\nSource revision: abc\nCI: https://ci.example.com/1"
	if diff := cmp.Diff(want, msg); diff != "" {
		t.Errorf("default message (-want +got):\n%s", diff)
	}
	req.Spec.MessageTemplate = "chore({{.Name}}): {{.Version}} [{{.Namespace}}]"
	if msg, _ := req.Message(); msg != "chore(web): v2 [prod]" {
		t.Errorf("custom message = %q", msg)
	}
	req.Spec.MessageTemplate = "{{.Nope}}"
	if _, err := req.Message(); err == nil || !strings.Contains(err.Error(), "messageTemplate") {
		t.Errorf("a template naming an unknown field: error = %v", err)
	}
	full, err := batchMessage([]Request{req, {Key: "prod/api", RolloutID: "r2", ImageRepo: "reg/api", Digest: "sha256:cd"}})
	if err == nil {
		t.Fatalf("a batch with a broken template rendered: %q", full)
	}
	req.Spec.MessageTemplate = ""
	full, err = batchMessage([]Request{req, {Key: "prod/api", RolloutID: "r2", ImageRepo: "reg/api", Version: "v9", Digest: "sha256:cd"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(full, "cvmanager: write back 2 rollouts\n\n- Deploy prod/web to v2 (reg/web@sha256:ab)\n- Deploy prod/api to v9") ||
		!strings.HasSuffix(full, "\n\nCvmanager-Rollout: r1\nCvmanager-Rollout: r2\n") {
		t.Errorf("batch message:\n%s", full)
	}
}

func TestRedaction(t *testing.T) {
	if got := redactURL("https://user:tok@git.example.com/a.git"); got != "https://git.example.com/a.git" {
		t.Errorf("redactURL = %q", got)
	}
	c := Credentials{Token: "tok-123456", Password: "pw-abcdef"}
	if got := c.scrub("failed with tok-123456 and pw-abcdef"); strings.Contains(got, "tok-123456") || strings.Contains(got, "pw-abcdef") {
		t.Errorf("scrub left a secret: %q", got)
	}
}

// TestInvalidRequestIsReported: a request the writer cannot use is
// reported Failed (asynchronously), never dropped or panicking.
func TestInvalidRequestIsReported(t *testing.T) {
	c := newCollector()
	w := newTestWriter(t, c, Config{})
	w.Submit(Request{Key: "prod/web", RolloutID: "r1", ImageRepo: "reg/web", Digest: "sha256:ab", Spec: cvv1.WriteBackSpec{URL: "https://git.example.com/a.git"}})
	if st := c.wait(t, "prod/web", 1); st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, "targets is empty") {
		t.Fatalf("%+v", st)
	}
}

// TestObserve: each report is observed with its state and a duration.
func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var got []string
	c := newCollector()
	w := newTestWriter(t, c, Config{Observe: func(state string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if d > 0 {
			got = append(got, state)
		}
	}})
	w.Submit(Request{Key: "prod/web", RolloutID: "r1", ImageRepo: "reg/web", Digest: "sha256:ab", Spec: cvv1.WriteBackSpec{URL: "https://git.example.com/a.git"}})
	c.wait(t, "prod/web", 1)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != cvv1.WriteBackFailed {
		t.Fatalf("observed %v, want one Failed", got)
	}
}
