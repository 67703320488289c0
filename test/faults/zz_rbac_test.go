package faults

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"cvmanager.dev/cvmanager/test/controlplane"
	"cvmanager.dev/cvmanager/test/kubetest"
)

// apiRecorder is a plain-HTTP reverse proxy between every controller
// process of the suite and kube-apiserver. It passes the controller's own
// ServiceAccount token through (so RBAC applies unchanged) and records each
// request as "group/resource verb", with the status the apiserver gave.
type apiRecorder struct {
	url       string
	caData    []byte // the recorder's own serving certificate
	mu        sync.Mutex
	used      map[string]int
	forbidden map[string]int
	// The requests of namespaced installs (tokens in nsTokens) are also
	// counted apart, with "@cluster" appended when a request was not
	// scoped to a namespace.
	nsTokens              map[string]bool
	nsUsed, nsForbidden   map[string]int
	nsNamespacesRequested map[string]bool
}

// watchNamespaced marks a controller token as a namespaced install's.
func watchNamespaced(token string) {
	recorderMu.Lock()
	defer recorderMu.Unlock()
	namespacedTokens[token] = true
}

var (
	recorderMu       sync.Mutex
	namespacedTokens = map[string]bool{}
)

var (
	recorderOnce sync.Once
	recorder     *apiRecorder
	recorderErr  error
)

// recorded routes cfg (a controller identity on the shared apiserver)
// through the recorder. Configs aimed elsewhere are returned unchanged.
func recorded(t testing.TB, cfg *rest.Config) *rest.Config {
	t.Helper()
	if cfg.Host != controlplane.SharedConfig().Host || cfg.BearerToken == "" {
		return cfg
	}
	recorderOnce.Do(func() { recorder, recorderErr = startRecorder(cfg) })
	if recorderErr != nil {
		t.Fatal(recorderErr)
	}
	return &rest.Config{Host: recorder.url, BearerToken: cfg.BearerToken, QPS: cfg.QPS, Burst: cfg.Burst,
		TLSClientConfig: rest.TLSClientConfig{CAData: recorder.caData}}
}

func startRecorder(cfg *rest.Config) (*apiRecorder, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	ca := cfg.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	pool.AppendCertsFromPEM(ca)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1 // watches stream
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}}
	rec := &apiRecorder{used: map[string]int{}, forbidden: map[string]int{},
		nsUsed: map[string]int{}, nsForbidden: map[string]int{}, nsNamespacesRequested: map[string]bool{}}
	proxy.ModifyResponse = func(resp *http.Response) error {
		rec.record(resp.Request, resp.StatusCode)
		return nil
	}
	// TLS, because client-go drops a kubeconfig's credentials on plain
	// HTTP. The server lives as long as the test binary.
	srv := httptest.NewTLSServer(proxy)
	rec.url = srv.URL
	rec.caData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return rec, nil
}

func (r *apiRecorder) record(req *http.Request, status int) {
	key, ok := permissionOf(req)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	recorderMu.Lock()
	namespaced := namespacedTokens[strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")]
	recorderMu.Unlock()
	if namespaced {
		nsKey := key
		if ns, ok := namespaceOf(req); ok {
			r.nsNamespacesRequested[ns] = true
		} else {
			nsKey += " @cluster"
		}
		if status == http.StatusForbidden {
			r.nsForbidden[nsKey]++
		} else {
			r.nsUsed[nsKey]++
		}
	}
	if status == http.StatusForbidden {
		r.forbidden[key]++
		return
	}
	r.used[key]++
}

// permissionOf maps a resource request to "group/resource verb" as RBAC
// sees it ("" group for the core API); discovery and non-resource paths
// are not resource requests.
func permissionOf(req *http.Request) (string, bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return "", false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return "", false
	}
	resource, named := parts[0], len(parts) >= 2
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
	if req.Method == http.MethodGet {
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	return group + "/" + resource + " " + verb, verb != ""
}

// namespaceOf is the namespace a request is scoped to, if any.
func namespaceOf(req *http.Request) (string, bool) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "namespaces" && i+2 < len(parts) {
			return parts[i+1], true
		}
	}
	return "", false
}

// grantedPermissions expands the ClusterRole and leader-election Role of
// deploy/10-rbac.yaml into "group/resource verb" entries.
func grantedPermissions(t *testing.T) []string {
	data, err := os.ReadFile(filepath.Join(kubetest.RepoRoot(), "deploy", "10-rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var granted []string
	for _, doc := range strings.Split(string(data), "\n---") {
		var role rbacv1.ClusterRole // a Role has the same rules field
		if yaml.Unmarshal([]byte(doc), &role) != nil || (role.Kind != "ClusterRole" && role.Kind != "Role") {
			continue
		}
		granted = append(granted, permissionsOf(role.Rules)...)
	}
	sort.Strings(granted)
	return granted
}

// permissionsOf expands rules into sorted "group/resource verb" entries,
// plus any extra entries given.
func permissionsOf(rules []rbacv1.PolicyRule, extra ...string) []string {
	var out []string
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, v := range rule.Verbs {
					out = append(out, g+"/"+res+" "+v)
				}
			}
		}
	}
	for _, e := range extra {
		for _, v := range []string{"create", "get", "update"} {
			out = append(out, e+" "+v)
		}
	}
	sort.Strings(out)
	return out
}

func yamlUnmarshal(doc string, into any) error { return yaml.Unmarshal([]byte(doc), into) }

// notExercisedHere are permissions the shipped role needs that this suite's
// scenarios do not reach; each is exercised by the named suite instead.
var notExercisedHere = map[string]string{
	"apps/statefulsets patch":             "test/e2e TestRolloutOfEveryWorkloadKind",
	"apps/daemonsets patch":               "test/e2e TestRolloutOfEveryWorkloadKind",
	"batch/cronjobs patch":                "test/e2e TestRolloutOfEveryWorkloadKind",
	"batch/jobs delete":                   "test/rollouts (a failed Job of a retried version)",
	"/pods/log get":                       "test/rollouts (failed Job log tail in the Event)",
	"batch/jobs get":                      "test/rollouts (suspended template Job)",
	"cvmanager.dev/containerversions get": "a re-read after a status conflict in pkg/controller, and `cvmanager cr sync`",
	"/events patch":                       "client-go's event correlator, when an identical Event repeats",
	"/nodes list":                         "a cluster-wide `run` (the platform gate's node cache); this suite's controllers watch namespaces, test/fleet TestPlatformGateOnKwokNodes reads real nodes",
	"/nodes watch":                        "a cluster-wide `run` (the platform gate's node cache); this suite's controllers watch namespaces, test/fleet TestPlatformGateOnKwokNodes reads real nodes",
}

// clusterScoped are permissions on cluster-scoped resources: a namespaced
// install's Roles cannot hold them, and it goes without what needs them.
var clusterScoped = map[string]bool{"/nodes list": true, "/nodes watch": true}

// namespacedPermissions is what deploy/'s ClusterRole grants that a Role can.
func namespacedPermissions(t *testing.T) []string {
	var out []string
	for _, p := range grantedPermissions(t) {
		if !clusterScoped[p] {
			out = append(out, p)
		}
	}
	return out
}

// TestClusterRoleIsExactlyWhatTheCodeUses runs last (file order): every
// request every controller process of the suite sent went through the
// recorder. It fails when the code needed a permission the shipped role
// lacks (any 403) or, after a full run, when the role grants something
// no scenario used and no other suite is named for it.
func TestClusterRoleIsExactlyWhatTheCodeUses(t *testing.T) {
	if recorder == nil {
		t.Skip("no controller process ran in this invocation")
	}
	recorder.mu.Lock()
	used, forbidden := copyCounts(recorder.used), copyCounts(recorder.forbidden)
	recorder.mu.Unlock()
	granted := grantedPermissions(t)
	for perm, n := range forbidden {
		if slices.Contains(granted, perm) {
			// A restarted apiserver refuses requests until its RBAC
			// caches are filled (TestAPIServerRestartMidRollout).
			t.Logf("%d× 403 for %q, which the role grants: an apiserver that was still starting", n, perm)
			continue
		}
		t.Errorf("the code needed %q (%d requests refused with 403): the shipped ClusterRole lacks it", perm, n)
	}
	for perm := range used {
		if !slices.Contains(granted, perm) {
			t.Errorf("%q was used without being granted (not 403?): check the recorder", perm)
		}
	}
	full := flag.Lookup("test.run").Value.String() == ""
	for _, perm := range granted {
		switch {
		case used[perm] > 0:
			t.Logf("used %6d× %s", used[perm], perm)
		case notExercisedHere[perm] != "":
			t.Logf("not reached here: %s (exercised by %s)", perm, notExercisedHere[perm])
		case full:
			t.Errorf("the ClusterRole grants %q but no controller of the full suite used it: remove it or name its test", perm)
		default:
			t.Logf("unused in this partial run: %s", perm)
		}
	}
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestNamespacedRoleIsExactlyWhatTheCodeUses is the check above for the
// namespaced install (TestNamespacedInstallWatchesOnlyItsNamespaces): its
// controller sent no request outside its namespaces (no cluster-wide list,
// watch or get), none was refused, and each used a permission the Roles
// grant. Permissions the Roles grant that this one scenario does not use
// are logged: the ClusterRole check above requires each to be used
// somewhere, and the Roles hold the same rules.
func TestNamespacedRoleIsExactlyWhatTheCodeUses(t *testing.T) {
	if recorder == nil {
		t.Skip("no controller process ran in this invocation")
	}
	recorder.mu.Lock()
	used, forbidden := copyCounts(recorder.nsUsed), copyCounts(recorder.nsForbidden)
	namespaces := len(recorder.nsNamespacesRequested)
	recorder.mu.Unlock()
	if len(used)+len(forbidden) == 0 {
		t.Skip("no namespaced install ran in this invocation")
	}
	granted := grantedPermissions(t)
	for perm, n := range forbidden {
		t.Errorf("the namespaced install was refused %q %d times: its Roles lack it, or it asked outside its namespaces", perm, n)
	}
	for perm, n := range used {
		switch {
		case strings.HasSuffix(perm, " @cluster"):
			t.Errorf("the namespaced install sent %d cluster-wide requests %q", n, perm)
		case !slices.Contains(granted, perm):
			t.Errorf("%q was used without being granted", perm)
		default:
			t.Logf("used %6d× %s", n, perm)
		}
	}
	if namespaces > 2 {
		t.Errorf("the namespaced install touched %d namespaces, want its 2", namespaces)
	}
}
