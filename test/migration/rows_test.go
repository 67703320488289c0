package migration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"cvmanager.dev/cvmanager/pkg/history"
	"cvmanager.dev/cvmanager/test/binproc"
	"cvmanager.dev/cvmanager/test/e2eenv"
	"cvmanager.dev/cvmanager/test/gen"
)

// originalCV is a ContainerVersion as the original cvmanager's README
// wrote it: its API group and a plain-map selector.
const originalCV = `apiVersion: custom.k8s.io/v1
kind: ContainerVersion
metadata:
  name: web
  namespace: %s
spec:
  imageRepo: %s
  tag: env-prod
  pollIntervalSeconds: 5
  selector:
    app: web
  container:
    name: app
  history:
    enabled: true
`

// The eight keys of the original's dashboard rows.
var originalRowKeys = []string{"Namespace", "Name", "Type", "Container", "Version", "AvailablePods", "CV", "Tag"}

// TestOriginalManifestCommandLineAndURLs covers rows "ContainerVersion
// manifest", "selector as a plain map", "run --k8s-config --configmap-key",
// "/v1/cv/workloads rows" and "/v1/cv/workloads/<workload> history": the
// original's manifest is refused with errors that say what to do, `cvmanager
// migrate` makes it apply, the original's command line starts the
// controller, and the original's URLs answer in the original's format.
func TestOriginalManifestCommandLineAndURLs(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/web")
	d1 := reg.MustPush(t, "team/web", "1a2b3c4", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "frontend", "web", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)

	// The manifest as it was: its group is not served.
	original := fmt.Sprintf(originalCV, e.NS, repo)
	out, err := kubectl(t, original, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, `no matches for kind "ContainerVersion" in version "custom.k8s.io/v1"`) {
		t.Fatalf("original apiVersion: err %v\n%s", err, out)
	}
	// Only the apiVersion changed: kubectl's strict validation names the
	// field, and without it the admission message names the command.
	newGroup := strings.Replace(original, "custom.k8s.io/v1", "cvmanager.dev/v1alpha1", 1)
	out, err = kubectl(t, newGroup, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, `unknown field "spec.selector.app"`) {
		t.Fatalf("plain-map selector, strict: err %v\n%s", err, out)
	}
	out, err = kubectl(t, newGroup, "apply", "--validate=false", "-f", "-")
	if err == nil || !strings.Contains(out, "cvmanager migrate -f FILE") {
		t.Fatalf("plain-map selector, no client validation: err %v\n%s", err, out)
	}
	t.Logf("admission of a plain-map selector: %s", strings.TrimSpace(out))

	// The migration: from a file, then applied.
	file := filepath.Join(t.TempDir(), "web-cv.yaml")
	e2eenv.Must(t, os.WriteFile(file, []byte(original), 0o600))
	migrated, code := cli(t, "", "migrate", "-f", file)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, migrated)
	}
	// cvmanager acts only within a CV's author's rights (docs/security.md):
	// the migrated manifest is stamped with its author as it is applied.
	stamped, code := cli(t, migrated, "cv", "stamp", "-f", "-", "--k8s-config", kubeconfig(t, true))
	if code != 0 {
		t.Fatalf("cv stamp: exit %d\n%s", code, stamped)
	}
	if out, err := kubectl(t, stamped, "apply", "-f", "-"); err != nil {
		t.Fatalf("applying the migrated, stamped manifest: %v\n%s\n%s", err, out, stamped)
	}
	if sel := e.GetCV("web").Spec.Selector; sel.MatchLabels["app"] != "web" || len(sel.MatchLabels) != 1 {
		t.Errorf("migrated selector: %+v", sel)
	}

	// A history an earlier cvmanager wrote under the CV's name.
	legacy, err := history.Encode([]history.Record{{ID: "legacy-1", Time: time.Now().Add(-time.Hour),
		Workload: "Deployment/frontend", ToVersion: "0ld0000", ToDigest: "sha256:00", Outcome: history.OutcomeSuccess}})
	e2eenv.Must(t, err)
	_, err = e.Kube.CoreV1().ConfigMaps(e.NS).Create(e.Ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "web.history", Labels: map[string]string{history.LabelHistory: "true"}}, Data: legacy}, metav1.CreateOptions{})
	e2eenv.Must(t, err)

	// The original's command line (plus what a test needs: its namespace,
	// a free port, the local registry and one replica).
	port := binproc.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	p := start(t, "run", "--k8s-config", kubeconfig(t, false), "--configmap-key=kube-system/cvmanager",
		"--history", "--rollback", "--namespace", e.NS, "--port", strconv.Itoa(port), "--insecure-registry", reg.Host, "--leader-elect=false")
	p.waitHTTP(e, base+"/readyz")
	p.waitHTTP(e, base+"/alive")

	var rows []map[string]any
	e.Eventually(60*time.Second, "the row shows the finished rollout", func() (bool, error) {
		rows = nil
		if err := getJSON(base+"/v1/cv/workloads?namespace="+e.NS, &rows); err != nil {
			return false, err
		}
		return len(rows) == 1 && rows[0]["Version"] == "1a2b3c4" && rows[0]["Status"] == "Success" &&
			rows[0]["AvailablePods"] == float64(1), fmt.Errorf("rows %v", rows)
	})
	row := rows[0]
	want := map[string]any{"Namespace": e.NS, "Name": "frontend", "Type": "Deployment", "Container": "app",
		"Version": "1a2b3c4", "AvailablePods": float64(1), "CV": "web", "Tag": "env-prod"}
	for _, k := range originalRowKeys {
		if row[k] != want[k] {
			t.Errorf("row[%q] = %v, want %v", k, row[k], want[k])
		}
	}
	for _, k := range []string{"Digest", "Image", "Status", "DesiredPods", "LastUpdate"} {
		if _, ok := row[k]; !ok {
			t.Errorf("row lacks %s: %v", k, row)
		}
	}
	for k := range row {
		if k != strings.ToUpper(k[:1])+k[1:] {
			t.Errorf("row key %q is not in the original's style", k)
		}
	}
	if row["Digest"] != d1 {
		t.Errorf("Digest %v, want %s", row["Digest"], d1)
	}

	// The original's history URL names the workload; its ConfigMap is <workload>.history.
	var records []history.Record
	e2eenv.Must(t, getJSON(base+"/v1/cv/workloads/frontend?namespace="+e.NS, &records))
	if len(records) != 1 || records[0].ToVersion != "1a2b3c4" || records[0].Workload != "Deployment/frontend" || records[0].CV != "web" {
		t.Errorf("workload history: %+v", records)
	}
	if _, err := e.Kube.CoreV1().ConfigMaps(e.NS).Get(e.Ctx, "frontend.history", metav1.GetOptions{}); err != nil {
		t.Errorf("frontend.history: %v", err)
	}
	// The CV's history: the new record and the one the earlier version wrote.
	records = nil
	e2eenv.Must(t, getJSON(base+"/v1/cv/containerversions/web/history?namespace="+e.NS, &records))
	if len(records) != 2 || records[0].ToVersion != "1a2b3c4" || records[1].ID != "legacy-1" {
		t.Errorf("CV history: %+v", records)
	}
	code, body := status(base + "/v1/cv/workloads/nothing?namespace=" + e.NS)
	if code != http.StatusNotFound || !strings.Contains(body, "/v1/cv/containerversions/") {
		t.Errorf("unknown workload: %d %s", code, body)
	}
	if page := mustGet(t, base+"/v1/cv/workloads?format=html&namespace="+e.NS); !strings.Contains(page, `href="/v1/cv/workloads/frontend?namespace=`+e.NS+`&amp;format=html"`) ||
		!strings.Contains(page, `href="/v1/cv/containerversions/web/history?namespace=`+e.NS+`&amp;format=html"`) {
		t.Errorf("the HTML rows do not link the workload's and the CV's history:\n%.2000s", page)
	}
}

// TestSettingsConfigMap covers row "run --configmap-key": the ConfigMap's
// settings apply, a bad value is reported in an Event and the log while
// the settings in force are kept; an explicitly named ConfigMap must exist.
func TestSettingsConfigMap(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/api")
	reg.MustPush(t, "team/api", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "api", "api", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	key := e.NS + "/cvmanager"

	out, code := cli(t, "", "run", "--k8s-config", kubeconfig(t, false), "--configmap-key", key, "--namespace", e.NS, "--port", "0", "--leader-elect=false")
	if code != 1 || !strings.Contains(out, "--configmap-key "+key+`: configmaps "cvmanager" not found`) {
		t.Errorf("missing explicit ConfigMap: exit %d\n%s", code, tail(out))
	}

	cms := e.Kube.CoreV1().ConfigMaps(e.NS)
	_, err = cms.Create(e.Ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cvmanager"}, Data: map[string]string{"history": "true"}}, metav1.CreateOptions{})
	e2eenv.Must(t, err)
	// The CV leaves history off: only the ConfigMap's default records it.
	e.CreateCV(gen.NewCV(e.NS, "api", repo, func(s *cvv1Spec) { s.History.Enabled = false }))
	p := start(t, "run", "--k8s-config", kubeconfig(t, false), "--configmap-key", key, "--namespace", e.NS,
		"--port", strconv.Itoa(binproc.FreePort(t)), "--insecure-registry", reg.Host, "--leader-elect=false")
	e.Eventually(60*time.Second, "v1 recorded through the ConfigMap's history default", func() (bool, error) {
		return len(e.WorkloadHistory("api")) == 1, nil
	})

	cm, err := cms.Get(e.Ctx, "cvmanager", metav1.GetOptions{})
	e2eenv.Must(t, err)
	cm.Data["history"] = "sometimes"
	_, err = cms.Update(e.Ctx, cm, metav1.UpdateOptions{})
	e2eenv.Must(t, err)
	e.Eventually(30*time.Second, "a SettingsRejected Event on the ConfigMap", func() (bool, error) {
		events, err := e.Kube.CoreV1().Events(e.NS).List(e.Ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=cvmanager"})
		if err != nil {
			return false, err
		}
		for _, ev := range events.Items {
			if ev.Reason == "SettingsRejected" && strings.Contains(ev.Message, `history: strconv.ParseBool: parsing "sometimes"`) {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events", len(events.Items))
	})
	if !strings.Contains(p.output(), "Settings ConfigMap rejected") {
		t.Errorf("the log does not report the rejected settings:\n%s", tail(p.output()))
	}
	reg.MustPush(t, "team/api", "v2", "env-prod")
	e.Eventually(60*time.Second, "v2 still recorded under the settings kept", func() (bool, error) {
		return len(e.WorkloadHistory("api")) == 2, nil
	})
}

// TestCRSyncStandalone covers row "cr sync --provider": the original's
// syncer command line runs one CV's syncer as its own process, which rolls
// a tag move out; `cr sync status --by` is its liveness probe; a provider
// that does not fit the repository's host is a clear error.
func TestCRSyncStandalone(t *testing.T) {
	e := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/shop")
	reg.MustPush(t, "team/shop", "v1", "env-prod")
	_, err := e.Kube.AppsV1().Deployments(e.NS).Create(e.Ctx, gen.NewDeployment(e.NS, "shop", "shop", repo+":old", 1), metav1.CreateOptions{})
	e2eenv.Must(t, err)
	e.CreateCV(gen.NewCV(e.NS, "shop", repo))
	kc := kubeconfig(t, false)

	out, code := cli(t, "", "cr", "sync", "--namespace", e.NS, "--provider=ecr", "--cv", "shop", "--k8s-config", kc)
	if code != 1 || !strings.Contains(out, "--provider ecr does not match spec.imageRepo \""+repo+"\": its host "+reg.Host+" is not an ECR registry") {
		t.Errorf("--provider=ecr on a v2 registry: exit %d\n%s", code, out)
	}
	out, code = cli(t, "", "cr", "sync", "--namespace", e.NS, "--provider=gcr", "--cv", "shop", "--k8s-config", kc)
	if code != 1 || !strings.Contains(out, `--provider "gcr": use ecr or dockerhub`) {
		t.Errorf("--provider=gcr: exit %d\n%s", code, out)
	}

	start(t, "cr", "sync", "--namespace", e.NS, "--provider=dockerhub", "--cv", "shop", "--k8s-config", kc, "--insecure-registry", reg.Host)
	e.WaitStatus("shop", "Success", "", 60*time.Second)
	moved := time.Now()
	d2 := reg.MustPush(t, "team/shop", "v2", "env-prod")
	e.Eventually(30*time.Second, "the standalone syncer rolls the tag move out", func() (bool, error) {
		return e.DeploymentImage("shop") == gen.Pinned(repo, "v2", d2), nil
	})
	e.WaitStatus("shop", "Success", d2, 60*time.Second)
	t.Logf("tag move → rollout finished by the standalone syncer in %s (poll interval 5 s)", time.Since(moved).Round(time.Millisecond))

	out, code = cli(t, "", "cr", "sync", "status", "--namespace", e.NS, "--cv", "shop", "--by", "2m", "--k8s-config", kc)
	if code != 0 || !strings.Contains(out, e.NS+"/shop polled at ") {
		t.Errorf("status --by 2m: exit %d\n%s", code, out)
	}
	time.Sleep(1100 * time.Millisecond)
	out, code = cli(t, "", "cr", "sync", "status", "--namespace", e.NS, "--cv", "shop", "--by", "1s", "--k8s-config", kc)
	if code != 1 || !strings.Contains(out, "more than 1s") {
		t.Errorf("status --by 1s: exit %d\n%s", code, out)
	}
}

// TestDefaultPort8081 covers row "port 8081": without --port the server
// listens where the original's examples point.
func TestDefaultPort8081(t *testing.T) {
	help, code := cli(t, "", "run", "--help")
	if code != 0 || !strings.Contains(help, "(default 8081)") {
		t.Fatalf("run --help: exit %d, no 8081 default\n%s", code, help)
	}
	// The contract is the default port itself, so no other port will do:
	// runs of this test on one machine take turns (a file lock), and a
	// port some other program holds is waited for, then a failure that
	// names the holder, never a skip.
	lockPort(t, 8081)
	if !waitPortFree(8081, 2*time.Minute) {
		t.Fatalf("127.0.0.1:8081, the default port under test, stayed taken for 2 minutes by %s; stop it and run again", portHolder(8081))
	}
	e := e2eenv.New(t)
	p := start(t, "run", "--k8s-config", kubeconfig(t, false), "--namespace", e.NS, "--leader-elect=false")
	p.waitHTTP(e, "http://127.0.0.1:8081/healthz")
	p.waitHTTP(e, "http://127.0.0.1:8081/v1/cv/workloads")
}

// TestCVGet runs `cv get` as a user does: a table of the namespace, the
// original's row keys with -o json, every namespace with -A.
func TestCVGet(t *testing.T) {
	e := e2eenv.New(t)
	other := e2eenv.New(t)
	reg := e2eenv.NewRegistry(t)
	repo := reg.Repo("team/cart")
	d1 := reg.MustPush(t, "team/cart", "v1", "env-prod")
	for _, env := range []*e2eenv.Env{e, other} {
		_, err := env.Kube.AppsV1().Deployments(env.NS).Create(env.Ctx, gen.NewDeployment(env.NS, "cart", "cart", repo+":old", 2), metav1.CreateOptions{})
		e2eenv.Must(t, err)
		env.CreateCV(gen.NewCV(env.NS, "cart", repo))
		env.StartController(reg.Resolver(t))
		env.WaitStatus("cart", "Success", d1, 60*time.Second)
	}
	kc := kubeconfig(t, true)

	var table string
	e.Eventually(30*time.Second, "both pods available in the table", func() (bool, error) {
		var code int
		table, code = cli(t, "", "cv", "get", "--k8s-config", kc, "-n", e.NS)
		return code == 0 && strings.Contains(table, "2/2"), fmt.Errorf("exit %d\n%s", code, table)
	})
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAMESPACE WORKLOAD CV TAG VERSION PODS STATUS UPDATED RUNNING" {
		t.Fatalf("table:\n%s", table)
	}
	if got := strings.Fields(lines[1]); len(got) < 7 || !slices.Equal(got[:7], []string{e.NS, "Deployment/cart", "cart", "env-prod", "v1", "2/2", "Success"}) {
		t.Errorf("table row: %q", lines[1])
	}

	out, code := cli(t, "", "cv", "get", "--k8s-config", kc, "-n", e.NS, "-o", "json")
	var rows []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
		t.Fatalf("-o json: exit %d\n%s", code, out)
	}
	for _, k := range originalRowKeys {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("-o json row lacks %s: %v", k, rows[0])
		}
	}
	if rows[0]["Version"] != "v1" || rows[0]["Digest"] != d1 || rows[0]["DesiredPods"] != float64(2) {
		t.Errorf("-o json row: %v", rows[0])
	}

	all, code := cli(t, "", "cv", "get", "--k8s-config", kc, "-A")
	if code != 0 || !strings.Contains(all, e.NS+" ") || !strings.Contains(all, other.NS+" ") {
		t.Errorf("-A lacks a namespace: exit %d\n%s", code, all)
	}
}

func getJSON(url string, into any) error {
	code, body := status(url)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, code, body)
	}
	return json.Unmarshal([]byte(body), into)
}

func status(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	code, body := status(url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}
