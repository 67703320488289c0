package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/generated/clientset/versioned"
	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/pkg/writeback"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
	"cvmanager.dev/cvmanager/test/gitserver"
)

// gitRepo is a bare repository served over smart HTTP by Debian's
// git-http-backend (test/gitserver) on 127.0.0.1, with basic auth.
type gitRepo struct {
	t    *testing.T
	bare string
	url  string
}

func newGitRepo(t *testing.T, files map[string]string) *gitRepo {
	t.Helper()
	srv, err := gitserver.Start(t.TempDir(), "ci", "token", files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &gitRepo{t: t, bare: srv.Bare, url: srv.URL}
}

func (r *gitRepo) git(dir string, args ...string) string {
	r.t.Helper()
	out, err := gitserver.Git(dir, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// show is path's content on main; log the commit subjects, newest first.
func (r *gitRepo) show(path string) string { return r.git(r.bare, "show", "main:"+path) }
func (r *gitRepo) log() string             { return r.git(r.bare, "log", "--format=%H %s", "main") }

// TestWriteBackRecordsWhatPassed runs the real controller with the git
// writer against a real git server: a rollout that passed is committed
// with its digest (comments kept), a failed one (rolled back) leaves git on
// the version that runs, and wrong credentials fail the write, name the
// repository and leave the rollout alone.
func TestWriteBackRecordsWhatPassed(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/wb")
	kustomization := "# the web app, deployed by the GitOps tool\nresources:\n- deployment.yaml\nimages:\n- name: " + repo + "\n  newTag: old # set by cvmanager\n"
	git := newGitRepo(t, map[string]string{"web/kustomization.yaml": kustomization})
	_, err := e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "git"},
		Data: map[string][]byte{"username": []byte("ci"), "password": []byte("token"), "wrong": []byte("nope")}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "wb", "wb", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)

	runWriteBackController(t, e, reg)

	d1 := reg.MustPush(t, "team/wb", "v1", "env-prod")
	e.CreateCV(gen.NewCV(e.NS, "wb", repo, func(s *cvv1.ContainerVersionSpec) {
		s.TimeoutSeconds = 8
		s.Rollback.Enabled = true
		s.WriteBack = &cvv1.WriteBackSpec{URL: git.url, Branch: "main",
			SecretRef: &cvv1.GitSecretRef{Name: "git", UsernameKey: "username", PasswordKey: "password"},
			Targets:   []cvv1.WriteBackTarget{{Path: "web/kustomization.yaml", Kind: cvv1.TargetKustomize, ImageName: repo}}}
	}))
	e.WaitStatus("wb", cvv1.StatusSuccess, d1, 60*time.Second)
	written := waitWriteBack(e, "wb", d1, cvv1.WriteBackWritten)
	file := git.show("web/kustomization.yaml")
	if !strings.Contains(file, d1) || !strings.Contains(file, "# the web app, deployed by the GitOps tool") ||
		!strings.Contains(file, "# set by cvmanager") {
		t.Errorf("kustomization after v1 (want its digest, comments kept):\n%s", file)
	}
	if !strings.Contains(git.log(), written.Commit) {
		t.Errorf("status names commit %s, not on main:\n%s", written.Commit, git.log())
	}
	commits := strings.Count(git.log(), "\n")
	// The rollout's history record names the commit: the one the remote
	// holds with the rollout's trailer.
	inRemote := strings.TrimSpace(git.git(git.bare, "log", "--format=%H", "--grep", "Cvmanager-Rollout: "+written.RolloutID, "main"))
	if rec := recordOf(e, "wb", d1); rec.WriteBack == nil || rec.WriteBack.State != cvv1.WriteBackWritten ||
		rec.WriteBack.Commit != inRemote || inRemote == "" || rec.WriteBack.RolloutID != written.RolloutID {
		t.Errorf("history record of v1: writeBack %+v, want Written with commit %q (the remote's commit of rollout %s)",
			rec.WriteBack, inRemote, written.RolloutID)
	}

	// A tiny GitOps loop applies what git holds, as Argo CD or Flux would,
	// under its own field manager. It converges on the digest cvmanager
	// rolled out: the drift detector sees its own image, no correction and
	// no second rollout follow.
	applied := kustomizedImage(t, git.show("web/kustomization.yaml"), repo)
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"` + applied + `"}]}}}}`
	_, err = e.Kube.AppsV1().Deployments(e.NS).Patch(e.Ctx, "wb", types.StrategicMergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "gitops-loop"})
	e2eenv.Must(t, err)
	generation, records := e.DeploymentGeneration("wb"), len(e.History("wb"))
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 2, 30*time.Second)
	if got := e.DeploymentImage("wb"); got != applied {
		t.Errorf("cvmanager changed what the GitOps loop applied from git: %s, want %s", got, applied)
	}
	if e.DeploymentGeneration("wb") != generation || len(e.History("wb")) != records {
		t.Errorf("the GitOps loop's apply of the written digest caused another rollout (generation %d → %d, %d → %d records)",
			generation, e.DeploymentGeneration("wb"), records, len(e.History("wb")))
	}
	if cond := conditionOf(e.GetCV("wb"), cvv1.ConditionDrifted); cond != nil && cond.Status == metav1.ConditionTrue {
		t.Errorf("the written digest, applied by the GitOps loop, is reported as drift: %s", cond.Message)
	}

	// kwok keeps pods of images containing "unready" in ImagePullBackOff:
	// the rollout fails and rolls back; git must not hear of v2.
	bad := reg.MustPush(t, "team/wb", "v2-unready", "env-prod")
	e.WaitStatus("wb", cvv1.StatusFailed, bad, 60*time.Second)
	waitPolls(e, reg, reg.Count("HEAD", "manifests"), 2, 30*time.Second)
	if file := git.show("web/kustomization.yaml"); strings.Contains(file, bad) || !strings.Contains(file, d1) {
		t.Errorf("git after a failed rollout must still hold v1:\n%s", file)
	}
	if got := strings.Count(git.log(), "\n"); got > commits+1 {
		t.Errorf("%d commits after the rollback, want at most one (the restored v1, a no-op here)", got-commits)
	}
	if cond := conditionOf(e.GetCV("wb"), controller.ConditionWriteBack); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("WriteBack condition %+v, want True", cond)
	}

	// Wrong credentials: the write fails naming the repository, without
	// the password, and the rollout stands.
	cv := e.GetCV("wb")
	cv.Spec.WriteBack.SecretRef.PasswordKey = "wrong"
	_, err = e.CVClient.CvmanagerV1alpha1().ContainerVersions(e.NS).Update(e.Ctx, cv, metav1.UpdateOptions{})
	e2eenv.Must(t, err)
	d3 := reg.MustPush(t, "team/wb", "v3", "env-prod")
	e.WaitStatus("wb", cvv1.StatusSuccess, d3, 60*time.Second)
	failed := waitWriteBack(e, "wb", d3, cvv1.WriteBackFailed)
	if !strings.Contains(failed.Reason, git.url) || strings.Contains(failed.Reason, "nope") || strings.Contains(failed.Reason, "token") {
		t.Errorf("failure reason must name the repository and no secret: %q", failed.Reason)
	}
	if got := e.DeploymentImage("wb"); got != gen.Pinned(repo, "v3", d3) {
		t.Errorf("a failed write-back touched the rollout: image %s", got)
	}
	if rec := recordOf(e, "wb", d3); rec.WriteBack == nil || rec.WriteBack.State != cvv1.WriteBackFailed ||
		rec.WriteBack.Reason != failed.Reason || rec.WriteBack.Commit != "" {
		t.Errorf("history record of v3: writeBack %+v, want Failed with the status's reason %q", rec.WriteBack, failed.Reason)
	}
	if cond := conditionOf(e.GetCV("wb"), controller.ConditionWriteBack); cond == nil || cond.Status != metav1.ConditionFalse ||
		!strings.Contains(cond.Message, git.url) || strings.Contains(cond.Message, "nope") {
		t.Errorf("WriteBack condition %+v, want False naming the repository and no secret", cond)
	}
	e.WaitEvents("wb", map[string]int{controller.ReasonWriteBackFailed: 1})
	events, err := e.Kube.CoreV1().Events(e.NS).List(e.Ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=wb,reason=" + controller.ReasonWriteBackFailed})
	e2eenv.Must(t, err)
	for _, ev := range events.Items {
		if ev.Type != "Warning" || !strings.Contains(ev.Message, git.url) || strings.Contains(ev.Message, "nope") {
			t.Errorf("WriteBackFailed Event %s %q: want a Warning naming the repository and no secret", ev.Type, ev.Message)
		}
	}
}

// recordOf is the newest Success record of the CV's rollout to digest.
func recordOf(e *e2eenv.Env, name, digest string) history.Record {
	e.T.Helper()
	for _, rec := range e.History(name) {
		if rec.ToDigest == digest && rec.Outcome == history.OutcomeSuccess {
			return rec
		}
	}
	e.T.Fatalf("no Success record of %s in the history of %s", digest, name)
	return history.Record{}
}

// runWriteBackController runs the real controller with the git writer
// (20 ms batch window) until the test ends.
func runWriteBackController(t *testing.T, e *e2eenv.Env, reg *e2eenv.Registry) {
	var ctrl *e2eenv.Controller
	writer := writeback.New(writeback.Config{BatchWindow: 20 * time.Millisecond}, func(key string, st cvv1.WriteBackStatus) {
		ctrl.ReportWriteBack(key, st)
	})
	t.Cleanup(writer.Close)
	opts := e.Options(reg.Resolver(t))
	opts.WriteBack = writer
	cfg := e2eenv.ControllerConfig(t)
	ctrl = e2eenv.NewController(kubernetes.NewForConfigOrDie(cfg), versioned.NewForConfigOrDie(cfg), opts)
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestWriteBackNamespaceDefaults: a CV that sets only its targets writes
// to the repository the namespace's cvmanager-defaults names, with its
// credentials. A broken defaults ConfigMap fails the write with a reason
// naming the ConfigMap key (condition, Event), leaves the rollout alone,
// and once fixed the retry writes.
func TestWriteBackNamespaceDefaults(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/nsdefaults")
	git := newGitRepo(t, map[string]string{"web/kustomization.yaml": "images:\n- name: " + repo + "\n  newTag: old\n"})
	_, err := e.Kube.CoreV1().Secrets(e.NS).Create(e.Ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "deploy-repo"},
		Data: map[string][]byte{"username": []byte("ci"), "password": []byte("token")}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	defaults := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: writeback.DefaultsConfigMap},
		Data: map[string]string{writeback.DefaultsKey: "url: " + git.url + "\nbrnach: main\n"}} // a typo
	_, err = e.Kube.CoreV1().ConfigMaps(e.NS).Create(e.Ctx, defaults, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	_, err = e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "nd", "nd", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	runWriteBackController(t, e, reg)

	d1 := reg.MustPush(t, "team/nsdefaults", "v1", "env-prod")
	e.CreateCV(gen.NewCV(e.NS, "nd", repo, func(s *cvv1.ContainerVersionSpec) {
		s.WriteBack = &cvv1.WriteBackSpec{Targets: []cvv1.WriteBackTarget{{Path: "web/kustomization.yaml", Kind: cvv1.TargetKustomize}}}
	}))
	e.WaitStatus("nd", cvv1.StatusSuccess, d1, 60*time.Second)
	failed := waitWriteBack(e, "nd", d1, cvv1.WriteBackFailed)
	if !strings.Contains(failed.Reason, `cvmanager-defaults key writeBack`) || !strings.Contains(failed.Reason, `"brnach"`) {
		t.Errorf("reason %q, want the ConfigMap key and the unknown field", failed.Reason)
	}
	if cond := conditionOf(e.GetCV("nd"), controller.ConditionWriteBack); cond == nil || cond.Status != metav1.ConditionFalse {
		t.Errorf("WriteBack condition %+v, want False", cond)
	}
	e.WaitEvents("nd", map[string]int{controller.ReasonWriteBackFailed: 1})

	defaults.Data[writeback.DefaultsKey] = "url: " + git.url + "\nbranch: main\nsecretRef: {name: deploy-repo, usernameKey: username, passwordKey: password}\n"
	_, err = e.Kube.CoreV1().ConfigMaps(e.NS).Update(e.Ctx, defaults, metav1.UpdateOptions{})
	e2eenv.Must(t, err)
	written := waitWriteBack(e, "nd", d1, cvv1.WriteBackWritten) // the retry after the 10 s backoff
	if file := git.show("web/kustomization.yaml"); !strings.Contains(file, d1) {
		t.Errorf("kustomization after the defaults were fixed (want %s):\n%s", d1, file)
	}
	if !strings.Contains(git.log(), written.Commit) {
		t.Errorf("status names commit %s, not on main:\n%s", written.Commit, git.log())
	}
}

// kustomizedImage is the image Kustomize renders for repo's images entry:
// name[:newTag][@digest].
func kustomizedImage(t *testing.T, kustomization, repo string) string {
	t.Helper()
	var k struct {
		Images []struct {
			Name, NewTag, Digest string
		} `json:"images"`
	}
	e2eenv.Must(t, yaml.Unmarshal([]byte(kustomization), &k))
	for _, img := range k.Images {
		if img.Name != repo {
			continue
		}
		out := img.Name
		if img.NewTag != "" {
			out += ":" + img.NewTag
		}
		if img.Digest != "" {
			out += "@" + img.Digest
		}
		return out
	}
	t.Fatalf("no images entry for %s in:\n%s", repo, kustomization)
	return ""
}

// waitWriteBack waits until status.writeBack shows state for digest.
func waitWriteBack(e *e2eenv.Env, name, digest, state string) cvv1.WriteBackStatus {
	e.T.Helper()
	var got cvv1.WriteBackStatus
	e.Eventually(30*time.Second, "status.writeBack "+state+" for "+digest, func() (bool, error) {
		wb := e.GetCV(name).Status.WriteBack
		if wb != nil {
			got = *wb
		}
		return wb != nil && wb.Digest == digest && wb.State == state, nil
	})
	return got
}

func conditionOf(cv *cvv1.ContainerVersion, typ string) *metav1.Condition {
	for i := range cv.Status.Conditions {
		if cv.Status.Conditions[i].Type == typ {
			return &cv.Status.Conditions[i]
		}
	}
	return nil
}
