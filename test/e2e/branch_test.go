package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/cli"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/policy"
	"cvmanager.dev/cvmanager/pkg/verify"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/sigstoretest"
)

const branchVersionSyntax = `(?P<branch>[a-z0-9-]+)-(?P<sha>[0-9a-f]{10})`

// runCLI runs cvmanager against the shared control plane.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return e2eenv.RunCLI(append([]string{"--kubeconfig", controlplane.Shared().KubeconfigPath()}, args...)...)
}

// TestBranchReleases: versions of two branches with different build times;
// the branch policy auto-releases main, holds another allowed branch until
// released and never rolls out a restricted one; `release --branch` picks
// the newest build of a branch (not the last tag), `--artifact` an exact
// version.
func TestBranchReleases(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	e.StartController(reg.Resolver(t))
	const path = "team/branches"
	repo := reg.Repo(path)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	push := func(created time.Time, tags ...string) string {
		d, err := reg.PushCreated(path, created, tags...)
		e2eenv.Must(t, err)
		return d
	}
	main2 := push(t0.Add(time.Hour), "main-2222222222", "env-prod")
	main1 := push(t0.Add(2*time.Hour), "main-1111111111") // built last, listed first
	feature := push(t0.Add(3*time.Hour), "feature-aaaaaaaaaa")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "web", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	web := gen.NewCV(e.NS, "web", repo, func(s *cvv1.ContainerVersionSpec) {
		s.VersionSyntax = branchVersionSyntax
		s.Policy = &cvv1.PolicySpec{AllowedVersions: "[a-z0-9-]+", AutoReleaseBranches: []string{"main"}, BranchRestriction: "main|release-.*"}
	})
	web.Labels = map[string]string{cli.DefaultServiceLabel: e.NS} // a service of its own, for --service
	e.CreateCV(web)
	e.WaitStatus("web", cvv1.StatusSuccess, main2, 60*time.Second)

	blobs, manifests, tagLists := reg.Count("GET", "blobs"), reg.Count("GET", "manifests"), reg.Count("GET", "tags")
	out, err := runCLI(t, "release", "-n", e.NS, "--cv", "web", "--branch", "main", "--insecure")
	if err != nil || !strings.Contains(out, "main-1111111111") {
		t.Fatalf("release --branch main: %v\n%s", err, out)
	}
	// Only the two main candidates' configs are read, never feature's.
	if got := reg.Count("GET", "blobs") - blobs; got != 2 {
		t.Errorf("release --branch read %d blobs, want the 2 candidates' configs", got)
	}
	t.Logf("release --branch main: GET blobs %d, GET manifests %d, GET tags %d", reg.Count("GET", "blobs")-blobs,
		reg.Count("GET", "manifests")-manifests, reg.Count("GET", "tags")-tagLists)
	e.WaitStatus("web", cvv1.StatusSuccess, main1, 60*time.Second)
	if got := e.DeploymentImage("web"); got != gen.Pinned(repo, "main-1111111111", main1) {
		t.Errorf("after release --branch main the deployment runs %s", got)
	}
	if records := e.History("web"); len(records) == 0 || records[0].Trigger != "release" || records[0].ToVersion != "main-1111111111" {
		t.Errorf("history should show the branch release first: %+v", records)
	}

	for _, tc := range []struct{ args, want string }{
		{"--artifact main-9999999999", "the registry has no version main-9999999999"},
		{"--artifact feature-aaaaaaaaaa", "policy.branchRestriction main|release-.* does not allow"},
		{"--branch nosuch", "has no version of branch nosuch"},
	} {
		args := append([]string{"release", "-n", e.NS, "--cv", "web", "--insecure"}, strings.Fields(tc.args)...)
		if out, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("release %s: %v (want %q)\n%s", tc.args, err, tc.want, out)
		}
	}

	// CI moves the tag onto a restricted branch: held, never rolled out.
	_, err = reg.MoveTag(path, "env-prod", "feature-aaaaaaaaaa")
	e2eenv.Must(t, err)
	cv := waitHeld(e, "web", feature, policy.ReasonBranchRestricted)
	if cond := findCond(cv, cvv1.ConditionReleaseBlocked); !strings.Contains(cond.Message, "branch feature") {
		t.Errorf("ReleaseBlocked should say which branch: %+v", cond)
	}
	if got := e.DeploymentImage("web"); got != gen.Pinned(repo, "main-1111111111", main1) {
		t.Errorf("a restricted branch was rolled out: %s", got)
	}
	e.WaitEvents("web", map[string]int{controller.ReasonReleaseBlocked: 1})
	if _, err := runCLI(t, "release", "-n", e.NS, "--cv", "web"); err == nil || !strings.Contains(err.Error(), "no release overrides (BranchRestricted)") {
		t.Errorf("releasing a restricted branch: %v", err)
	}

	// Another allowed branch waits for a release; --artifact releases it
	// exactly, in the environment --service and --env name.
	rel := push(t0.Add(4*time.Hour), "release-1-bbbbbbbbbb", "env-prod")
	waitHeld(e, "web", rel, policy.ReasonBranchNotAutoReleased)
	if out, err := runCLI(t, "release", "--service", e.NS, "--env", e.NS, "--artifact", "release-1-bbbbbbbbbb", "--insecure"); err != nil {
		t.Fatalf("release --artifact: %v\n%s", err, out)
	}
	e.WaitStatus("web", cvv1.StatusSuccess, rel, 60*time.Second)
}

// TestPolicyCommands: policy apply/delete edit only the branch fields,
// apply refuses a policy the controller-wide restriction contradicts
// (naming both), and list prints the result.
func TestPolicyCommands(t *testing.T) {
	e := e2eenv.New(t)
	e.CreateCV(gen.NewCV(e.NS, "web", "registry.example.com/team/web", func(s *cvv1.ContainerVersionSpec) {
		s.VersionSyntax = branchVersionSyntax
		s.Policy = &cvv1.PolicySpec{AllowedVersions: "[a-z0-9-]+"}
	}))
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: e.NS, Name: "cvmanager-settings"},
		Data: map[string]string{"policy-version-restriction": e.NS + "=^(main|release-[0-9]+)-"}}
	_, err := e.Kube.CoreV1().ConfigMaps(e.NS).Create(e.Ctx, settings, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	settingsFlag := "--configmap-key=" + e.NS + "/cvmanager-settings"

	_, err = runCLI(t, "policy", "apply", "-n", e.NS, "--cv", "web", "--branch-restriction", "hotfix|feature-.*", settingsFlag)
	if err == nil || !strings.Contains(err.Error(), "branch restriction hotfix|feature-.* conflicts with the controller-wide restriction") {
		t.Errorf("conflicting restriction: %v", err)
	}
	out, err := runCLI(t, "policy", "apply", "-n", e.NS, "--cv", "web", "--auto-release-branch", "main",
		"--branch-restriction", "main|release-.*|hotfix", settingsFlag)
	if err != nil {
		t.Fatalf("policy apply: %v\n%s", err, out)
	}
	_, err = runCLI(t, "policy", "apply", "-n", e.NS, "--cv", "web", "--auto-release-branch", "hotfix", settingsFlag)
	for _, want := range []string{`auto-release branch "hotfix"`, e.NS + "=^(main|release-[0-9]+)-", "settings ConfigMap " + e.NS + "/cvmanager-settings"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("conflicting apply: %v, want it to name %q", err, want)
		}
	}
	_, err = runCLI(t, "policy", "apply", "-n", e.NS, "--cv", "web", "--auto-release-branch", "feature", settingsFlag)
	if err == nil || !strings.Contains(err.Error(), "does not match the branch restriction") {
		t.Errorf("auto-release outside the restriction: %v", err)
	}
	out, err = runCLI(t, "policy", "apply", "-n", e.NS, "--cv", "web", "--auto-release-branch", "release-1", settingsFlag)
	if err != nil {
		t.Fatalf("policy apply release-1: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "delete", "-n", e.NS, "--cv", "web", "--auto-release-branch", "main")
	if err != nil {
		t.Fatalf("policy delete: %v\n%s", err, out)
	}
	out, err = runCLI(t, "policy", "list", "-n", e.NS, "-o", "json")
	e2eenv.Must(t, err)
	var rows []cli.PolicyRow
	e2eenv.Must(t, json.Unmarshal([]byte(out), &rows))
	want := []cli.PolicyRow{{Namespace: e.NS, Name: "web", VersionSyntax: branchVersionSyntax, AllowedVersions: "[a-z0-9-]+",
		AutoReleaseBranches: []string{"release-1"}, BranchRestriction: "main|release-.*|hotfix"}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("policy list -o json (-want +got):\n%s", diff)
	}
	out, err = runCLI(t, "policy", "list", "-A")
	e2eenv.Must(t, err)
	if !strings.Contains(out, "AUTO-RELEASE-BRANCHES") || !strings.Contains(out, "release-1") || !strings.Contains(out, "main|release-.*|hotfix") {
		t.Errorf("policy list:\n%s", out)
	}
}

// TestBranchReleaseChecksSignatures: `release --branch` does not move the
// tag onto an image the CV's Enforce signature policy would refuse; once
// the image is signed the same command releases it.
func TestBranchReleaseChecksSignatures(t *testing.T) {
	s := newSignedEnv(t)
	e := s.e
	repo := s.app("sig", func(spec *cvv1.ContainerVersionSpec) { spec.VersionSyntax = branchVersionSyntax })
	signed := s.push("sig", "main-1111111111", s.signedBy(s.key))
	e.WaitStatus("sig", cvv1.StatusSuccess, signed, 60*time.Second)
	unsigned, err := s.reg.PushCreated("team/sig", time.Now().Add(time.Hour), "main-2222222222")
	e2eenv.Must(t, err)

	release := []string{"release", "-n", e.NS, "--cv", "sig", "--branch", "main", "--insecure"}
	out, err := runCLI(t, release...)
	if err == nil || !strings.Contains(err.Error(), verify.ReasonUnsigned) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("release of an unsigned newest build: want a refusal naming Unsigned and --force, got %v\n%s", err, out)
	}
	if out, _ := runCLI(t, "cr", "tags", "get", "--insecure", "--repo", repo, "--version", "env-prod"); !strings.Contains(out, signed) {
		t.Errorf("a refused release moved env-prod: %s", out)
	}
	sigstoretest.PushSignatures(t, repo, unsigned, s.key.Sign(t, repo, unsigned))
	if out, err := runCLI(t, release...); err != nil {
		t.Fatalf("release of the signed build: %v\n%s", err, out)
	}
	e.WaitStatus("sig", cvv1.StatusSuccess, unsigned, 60*time.Second)
}
