package faults

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// controllerUser is the identity every controller process runs as: the
// ServiceAccount bound to the ClusterRole shipped in deploy/.
const controllerUser = "system:serviceaccount:cvmanager-system:cvmanager"

// fixture is one test's namespace, registry and application.
type fixture struct {
	*e2eenv.Env
	reg  *e2eenv.Registry
	app  string // Deployment, CV and image path share this name
	repo string
	gen0 int64 // Deployment generation before any rollout
	// pinned is the image the rollout under test writes (set by
	// killAndResume).
	pinned string
	// digests are the digests each fault case pushed (registry test).
	digests map[string]string
	// args are added to every controller the fixture starts.
	args []string
}

// newFixture creates a Deployment app running an old image and a registry
// repository for it; the CV is created by the test (createCV).
func newFixture(t *testing.T, app string, editDeployment ...func(*appsv1.Deployment)) *fixture {
	t.Helper()
	f := &fixture{Env: e2eenv.New(t), reg: e2eenv.NewRegistry(t), app: app}
	f.repo = f.reg.Repo("team/" + app)
	dep := gen.NewDeployment(f.NS, app, app, f.repo+":old", 2)
	for _, edit := range editDeployment {
		edit(dep)
	}
	_, err := f.Kube.AppsV1().Deployments(f.NS).Create(f.Ctx, dep, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	f.gen0 = f.DeploymentGeneration(app)
	t.Cleanup(f.dumpOnFailure)
	return f
}

// dumpOnFailure logs the namespace's workloads and pods when the test
// failed, so a failure says what the cluster looked like.
func (f *fixture) dumpOnFailure() {
	if !f.T.Failed() {
		return
	}
	cp := controlplane.Shared()
	out, _ := cp.Kubectl("get", "deployments,replicasets,pods,cv", "-n", f.NS, "-o", "wide")
	f.T.Logf("namespace %s at failure:\n%s", f.NS, out)
	conds, _ := cp.Kubectl("get", "pods", "-n", f.NS, "-o",
		`jsonpath={range .items[*]}{.metadata.name}: {range .status.conditions[*]}{.type}={.status}({.reason}) {end}{"\n"}{end}`)
	f.T.Logf("pod conditions:\n%s", conds)
	nodes, _ := cp.Kubectl("get", "nodes", "-o", `jsonpath={range .items[*].status.conditions[*]}{.type}={.status} hb={.lastHeartbeatTime} tr={.lastTransitionTime}{"\n"}{end}`)
	f.T.Logf("node conditions:\n%s", nodes)
	for name, pid := range cp.PIDs() {
		if syscall.Kill(pid, 0) != nil {
			f.T.Logf("control-plane process %s (pid %d) is gone", name, pid)
		}
	}
}

// push moves env-prod to a new image tagged version and returns its digest.
func (f *fixture) push(version string) string {
	return f.reg.MustPush(f.T, "team/"+f.app, version, "env-prod")
}

// rollOut pushes version, waits until the CV reports it deployed and
// returns its digest.
func (f *fixture) rollOut(version string, timeout time.Duration) string {
	f.T.Helper()
	digest := f.push(version)
	f.WaitStatus(f.app, cvv1.StatusSuccess, digest, timeout)
	return digest
}

// createCV creates the app's CV with rollback and history on.
func (f *fixture) createCV(edit ...func(*cvv1.ContainerVersionSpec)) {
	edit = append([]func(*cvv1.ContainerVersionSpec){func(s *cvv1.ContainerVersionSpec) { s.Rollback.Enabled = true }}, edit...)
	f.CreateCV(gen.NewCV(f.NS, f.app, f.repo, edit...))
}

// startController runs the real binary for the test's namespace without
// leader election (a crashed leader's lease would only add waiting).
func (f *fixture) startController(name string, extra ...string) *proc {
	args := append([]string{"--namespace", f.NS, "--leader-elect=false", "--insecure-registry", f.reg.Host}, f.args...)
	args = append(args, extra...)
	return startProc(f.T, name, e2eenv.ControllerConfig(f.T), args...)
}

// cv reads the app's CV from the API.
func (f *fixture) cv() *cvv1.ContainerVersion { return f.GetCV(f.app) }

// patches is how many times the Deployment's spec changed since the start.
func (f *fixture) patches() int64 { return f.DeploymentGeneration(f.app) - f.gen0 }

// assertOnce checks the end state after faults: the Deployment's spec was
// changed exactly wantPatches times, history holds exactly the outcomes
// (newest first) with distinct IDs, and each rollout started once.
func (f *fixture) assertOnce(wantPatches int64, wantOutcomes ...string) {
	f.T.Helper()
	if got := f.patches(); got != wantPatches {
		f.T.Errorf("Deployment spec changed %d times, want %d (a duplicate or lost patch)", got, wantPatches)
	}
	records := f.History(f.app)
	var outcomes, ids []string
	for _, r := range records {
		outcomes = append(outcomes, r.Outcome)
		if slices.Contains(ids, r.ID) {
			f.T.Errorf("history record %s appears twice", r.ID)
		}
		ids = append(ids, r.ID)
	}
	if strings.Join(outcomes, ",") != strings.Join(wantOutcomes, ",") {
		f.T.Errorf("history outcomes %v, want %v (a lost or duplicated record)", outcomes, wantOutcomes)
	}
	// Events are best effort: one still queued in the killed process's
	// broadcaster is lost with it. A second start would show as more.
	if got := f.EventReasons(f.app)["RolloutStarted"]; got > len(wantOutcomes) {
		f.T.Errorf("%d RolloutStarted events, want at most %d: a rollout was started again", got, len(wantOutcomes))
	}
}

// freeze installs a ValidatingAdmissionPolicy that refuses the
// controller's writes to resources in the test's namespace unless allow (a
// CEL expression over object and oldObject) holds. It is how a test holds a
// rollout at a named step without touching the product. The returned
// function removes the policy and waits until writes pass again.
func (f *fixture) freeze(name, group string, resources []string, allow string) (unfreeze func()) {
	f.T.Helper()
	policyName := fmt.Sprintf("freeze-%s-%s", name, f.NS)
	f.applyFreeze(policyName, group, resources, allow)
	f.Eventually(20*time.Second, "freeze "+name+" active", func() (bool, error) {
		err := f.probe(group)
		return err != nil && strings.Contains(err.Error(), "frozen by the fault test"), err
	})
	done := false
	unfreeze = func() {
		if done {
			return
		}
		done = true
		policies := f.Kube.AdmissionregistrationV1()
		_ = policies.ValidatingAdmissionPolicyBindings().Delete(f.Ctx, policyName, metav1.DeleteOptions{})
		_ = policies.ValidatingAdmissionPolicies().Delete(f.Ctx, policyName, metav1.DeleteOptions{})
		f.Eventually(20*time.Second, "freeze "+name+" lifted", func() (bool, error) {
			err := f.probe(group)
			return err == nil, err
		})
	}
	f.T.Cleanup(unfreeze)
	return unfreeze
}

const probeAnnotation = "faults.cvmanager.dev/probe"

func (f *fixture) applyFreeze(name, group string, resources []string, allow string) {
	f.T.Helper()
	probe := fmt.Sprintf("has(object.metadata.annotations) && '%s' in object.metadata.annotations", probeAnnotation)
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptrTo(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: resources},
				},
			}}},
			MatchConditions: []admissionv1.MatchCondition{{Name: "controller-or-probe",
				Expression: fmt.Sprintf("request.userInfo.username == '%s' || (%s)", controllerUser, probe)}},
			Validations: []admissionv1.Validation{{
				Expression: fmt.Sprintf("!(%s) && (%s)", probe, allow),
				Message:    "frozen by the fault test",
			}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.NS}}},
		},
	}
	policies := f.Kube.AdmissionregistrationV1()
	_, err := policies.ValidatingAdmissionPolicies().Create(f.Ctx, policy, metav1.CreateOptions{})
	e2eenv.Must(f.T, err)
	_, err = policies.ValidatingAdmissionPolicyBindings().Create(f.Ctx, binding, metav1.CreateOptions{})
	e2eenv.Must(f.T, err)
}

// probe is a server-side dry run, as admin, of an update marked with the
// probe annotation: it fails exactly while a freeze policy is enforced.
func (f *fixture) probe(group string) error {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"1"}}}`, probeAnnotation))
	opts := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}
	if group == cvv1.SchemeGroupVersion.Group {
		_, err := f.CVClient.CvmanagerV1alpha1().ContainerVersions(f.NS).Patch(f.Ctx, f.app, types.MergePatchType, patch, opts)
		return err
	}
	if group == "" {
		_, err := f.Kube.CoreV1().Services(f.NS).Patch(f.Ctx, f.app, types.MergePatchType, patch, opts)
		return err
	}
	// Simple fixtures have Deployment <app>; blue-green ones <app>-blue.
	_, err := f.Kube.AppsV1().Deployments(f.NS).Patch(f.Ctx, f.app, types.MergePatchType, patch, opts)
	if apierrors.IsNotFound(err) {
		_, err = f.Kube.AppsV1().Deployments(f.NS).Patch(f.Ctx, f.app+"-blue", types.MergePatchType, patch, opts)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func ptrTo[T any](v T) *T { return &v }
