package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/pkg/authz"
	"cvmanager.dev/cvmanager/pkg/workload"
	"cvmanager.dev/cvmanager/test/gen"
)

// apiCall is what a fixture test asserts of one request the executor made.
type apiCall struct {
	Verb, Resource, Name string
	// Body is the patch (with its type) or what else identifies the request.
	Body string
}

func callsOf(client *fake.Clientset) []apiCall {
	var calls []apiCall
	for _, a := range client.Actions() {
		c := apiCall{Verb: a.GetVerb(), Resource: a.GetResource().Resource}
		switch a := a.(type) {
		case k8stesting.PatchAction:
			c.Name, c.Body = a.GetName(), string(a.GetPatchType())+" "+string(a.GetPatch())
		case k8stesting.CreateAction:
			c.Name = a.GetObject().(metav1.Object).GetName()
		case k8stesting.DeleteAction:
			opts := a.GetDeleteOptions()
			c.Name, c.Body = a.GetName(), fmt.Sprintf("uid=%s propagation=%s", *opts.Preconditions.UID, *opts.PropagationPolicy)
		case k8stesting.GetAction:
			c.Name = a.GetName()
		}
		calls = append(calls, c)
	}
	return calls
}

func verifyStep(cv *cvv1.ContainerVersion, jobs *Jobs, spec cvv1.VerifySpec) CreateJob {
	step := jobs.VerifySteps(cv, target, PhaseVerifyAfter, []cvv1.VerifySpec{spec})[0]
	return CreateJob{Name: JobName(cv.Name, step.Phase, step.Name, target.Digest), Step: step, Target: target}
}

func TestExecutorPatchesScalesAndPoints(t *testing.T) {
	web := gen.NewDeployment(testNS, "web", "web", oldImage, 1)
	green := gen.ColorDeployment(testNS, "web", "green", oldImage, 0)
	live := gen.BlueGreenServices(testNS, "web")[0]
	client := fake.NewClientset(web, green, live)
	actions := []Action{
		PatchImage{Workload: workload.Workload{Kind: workload.Deployment, Object: web}, Container: "app", Image: newImage},
		ScaleDeployment{Deployment: green, Replicas: 3},
		PointService{Service: live, Selector: map[string]string{"color": "green"}},
	}
	p, err := (&Executor{Client: client, Jobs: &Jobs{}}).Apply(context.Background(), rollingCV(StepMigrated), actions)
	if p != nil || err != nil {
		t.Fatalf("Apply = %v, %v; want nil, nil", p, err)
	}
	want := []apiCall{
		{"patch", "deployments", "web", `application/strategic-merge-patch+json {"metadata":{"annotations":{"image.cvmanager.dev/app":"` + newImage +
			`"}},"spec":{"template":{"spec":{"containers":[{"image":"` + newImage + `","name":"app"}]}}}}`},
		{"patch", "deployments", "web-green", `application/merge-patch+json {"spec":{"replicas":3}}`},
		{"patch", "services", "web", `application/merge-patch+json {"spec":{"selector":{"color":"green"}}}`},
	}
	if diff := cmp.Diff(want, callsOf(client)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
	svc, _ := client.CoreV1().Services(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if diff := cmp.Diff(map[string]string{"app": "web", "color": "green"}, svc.Spec.Selector); diff != "" {
		t.Errorf("selector keys cvmanager does not manage must stay (-want +got):\n%s", diff)
	}
}

// A created Job carries the step's deadline (the timeout the Job
// controller enforces), its TTL, the labels the controller's cache selects
// on and the CV as owner.
func TestExecutorCreatesTheJobOfAStep(t *testing.T) {
	cv := rollingCV(StepWorkloadsReady)
	client := fake.NewClientset()
	jobs := &Jobs{}
	create := verifyStep(cv, jobs, cvv1.VerifySpec{Kind: "Image", Image: "smoke@" + digestA, TimeoutSeconds: 45})
	p, err := (&Executor{Client: client, Jobs: jobs}).Apply(context.Background(), cv, []Action{create})
	if p != nil || err != nil {
		t.Fatalf("Apply = %v, %v; want nil, nil", p, err)
	}
	if diff := cmp.Diff([]apiCall{{Verb: "create", Resource: "jobs", Name: create.Name}}, callsOf(client)); diff != "" {
		t.Fatalf("API calls (-want +got):\n%s", diff)
	}
	job, err := client.BatchV1().Jobs(testNS).Get(context.Background(), create.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{job.Labels, ptr.Deref(job.Spec.ActiveDeadlineSeconds, 0), ptr.Deref(job.Spec.TTLSecondsAfterFinished, 0),
		job.OwnerReferences[0].Name, ptr.Deref(job.OwnerReferences[0].Controller, false), job.Spec.Template.Spec.Containers[0].Image}
	want := []any{map[string]string{LabelCV: "web", LabelDigest: shortDigest(digestB), LabelPhase: PhaseVerifyAfter},
		int64(45), verifyTTL, "web", true, "smoke@" + digestA}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
}

func TestExecutorJobOutcomes(t *testing.T) {
	cv := rollingCV(StepWorkloadsReady)
	refuse := func(context.Context, *cvv1.ContainerVersion, *batchv1.JobSpec) error {
		return &authz.Refusal{Author: "alice", Policy: "no Jobs for you"}
	}
	reject := func(err error) k8stesting.ReactionFunc {
		return func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, err }
	}
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"}, "x",
		field.ErrorList{field.Invalid(field.NewPath("spec"), "x", "bad")})
	existing := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: JobName("web", PhaseVerifyAfter, "1", digestB)}}
	cases := []struct {
		name     string
		admit    func(context.Context, *cvv1.ContainerVersion, *batchv1.JobSpec) error
		spec     cvv1.VerifySpec
		objects  []runtime.Object
		reactor  k8stesting.ReactionFunc
		want     *Progress
		wantErr  string
		wantVerb []string
	}{{
		name: "a verifier that cannot be resolved fails the step", spec: cvv1.VerifySpec{Image: "smoke", Tag: "stable"},
		want: &Progress{Phase: Failed, Reason: "JobInvalid", Message: `postverify job "1": verifier smoke:stable: no registry resolver configured`},
	}, {
		name: "a refusal by Admit is the cluster's configuration", admit: refuse, spec: cvv1.VerifySpec{Image: "smoke"},
		want: &Progress{Phase: Failed, Reason: authz.ReasonForbidden, Misconfigured: true,
			Message: `postverify job "1": ` + (&authz.Refusal{Author: "alice", Policy: "no Jobs for you"}).Error()},
	}, {
		name: "an Admit error that is no refusal is retried", spec: cvv1.VerifySpec{Image: "smoke"},
		admit: func(context.Context, *cvv1.ContainerVersion, *batchv1.JobSpec) error {
			return errors.New("SAR timed out")
		},
		wantErr: "SAR timed out",
	}, {
		name: "a Job the API server rejects fails the step", spec: cvv1.VerifySpec{Image: "smoke"}, reactor: reject(invalid),
		want:     &Progress{Phase: Failed, Reason: "JobInvalid", Message: `postverify job "1" rejected: ` + invalid.Error()},
		wantVerb: []string{"create"},
	}, {
		name: "a Job the API server cannot decode fails the step", spec: cvv1.VerifySpec{Image: "smoke"},
		reactor: reject(apierrors.NewBadRequest("no")), wantVerb: []string{"create"},
		want: &Progress{Phase: Failed, Reason: "JobInvalid", Message: `postverify job "1" rejected: no`},
	}, {
		name: "another create error is retried", spec: cvv1.VerifySpec{Image: "smoke"},
		reactor: reject(apierrors.NewServiceUnavailable("etcd")), wantErr: "creating Job", wantVerb: []string{"create"},
	}, {
		name: "a Job that exists already is the one an earlier sync created", spec: cvv1.VerifySpec{Image: "smoke"},
		objects: []runtime.Object{existing}, wantVerb: []string{"create"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := fake.NewClientset(c.objects...)
			if c.reactor != nil {
				client.PrependReactor("create", "jobs", c.reactor)
			}
			jobs := &Jobs{Admit: c.admit}
			p, err := (&Executor{Client: client, Jobs: jobs}).Apply(context.Background(), cv, []Action{verifyStep(cv, jobs, c.spec)})
			if (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want one saying %q", err, c.wantErr)
			}
			if diff := cmp.Diff(c.want, p); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
			var verbs []string
			for _, call := range callsOf(client) {
				verbs = append(verbs, call.Verb)
			}
			if diff := cmp.Diff(c.wantVerb, verbs); diff != "" {
				t.Errorf("API verbs (-want +got):\n%s", diff)
			}
		})
	}
}

// The stale Job is deleted by UID, its pods in the background; gone
// already counts as deleted. A decisive outcome stops the actions after it.
func TestExecutorDeletesStaleJobsAndStopsOnAVerdict(t *testing.T) {
	cv := rollingCV(StepPreVerified)
	stale := stepJob(cv, PhaseMigrate, "schema", rolloutStart.Add(-time.Hour), batchv1.JobFailed, "BackoffLimitExceeded")
	client := fake.NewClientset(stale)
	gone := stale.DeepCopy()
	gone.Name = "gone"
	jobs := &Jobs{}
	unbuildable := verifyStep(cv, jobs, cvv1.VerifySpec{Image: "smoke", Tag: "stable"})
	web := gen.NewDeployment(testNS, "web", "web", oldImage, 1)
	actions := []Action{DeleteJob{Job: stale}, DeleteJob{Job: gone}, unbuildable,
		PatchImage{Workload: workload.Workload{Kind: workload.Deployment, Object: web}, Container: "app", Image: newImage}}
	p, err := (&Executor{Client: client, Jobs: jobs}).Apply(context.Background(), cv, actions)
	if err != nil || p == nil || p.Reason != "JobInvalid" {
		t.Fatalf("Apply = %+v, %v; want the JobInvalid verdict", p, err)
	}
	want := []apiCall{
		{"delete", "jobs", stale.Name, "uid=job-uid propagation=Background"},
		{"delete", "jobs", "gone", "uid=job-uid propagation=Background"},
	}
	if diff := cmp.Diff(want, callsOf(client)); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
}

func TestExecutorReturnsAPIErrorsForRetry(t *testing.T) {
	green := gen.ColorDeployment(testNS, "web", "green", oldImage, 0)
	client := fake.NewClientset(green)
	client.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "web-green", errors.New("busy"))
	})
	p, err := (&Executor{Client: client}).Apply(context.Background(), rollingCV(StepMigrated), []Action{ScaleDeployment{Deployment: green, Replicas: 1}})
	if p != nil || err == nil || !strings.Contains(err.Error(), "scaling Deployment/web-green to 1") {
		t.Errorf("Apply = %v, %v; want a retryable error naming the action", p, err)
	}
	if _, err := (&Executor{Client: client}).Apply(context.Background(), rollingCV(StepMigrated), []Action{unknownAction{}}); err == nil {
		t.Error("an unknown action must be an error")
	}
}

type unknownAction struct{}

func (unknownAction) Describe() string { return "nothing" }

// Observe reads the logs of the failed Jobs of the rollout under way only.
func TestJobLogsReadsFailedJobsOfThisRolloutOnly(t *testing.T) {
	cv := rollingCV(StepPreVerified)
	job := func(name, digest string, created time.Time, cond batchv1.JobConditionType) *batchv1.Job {
		j := stepJob(cv, PhaseMigrate, name, created, cond, "BackoffLimitExceeded")
		j.Labels = map[string]string{LabelCV: "web", LabelDigest: shortDigest(digest)}
		return j
	}
	after, before := rolloutStart.Add(time.Second), rolloutStart.Add(-time.Hour)
	failed := job("schema", digestB, after, batchv1.JobFailed)
	jobs := map[string]*batchv1.Job{}
	for _, j := range []*batchv1.Job{failed, job("ok", digestB, after, batchv1.JobComplete),
		job("older", digestA, after, batchv1.JobFailed), job("stale", digestB, before, batchv1.JobFailed)} {
		jobs[j.Name] = j
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "schema-x",
		Labels: map[string]string{"batch.kubernetes.io/job-name": failed.Name}}}
	client := fake.NewClientset(pod)
	got := (&Jobs{Client: client}).JobLogs(context.Background(), cv, jobs)
	if diff := cmp.Diff(map[string]string{failed.Name: "fake logs"}, got); diff != "" {
		t.Errorf("logs (-want +got):\n%s", diff)
	}
	if n := len(client.Actions()); n != 2 {
		t.Errorf("%d requests, want a pod list and a log read: %v", n, client.Actions())
	}
}
