// Package packaging checks the container packaging without a Docker engine
// (none runs on the test machines): the Dockerfile's rules are linted, the
// binary is built the way its build stage builds it and must be static, and
// docker-compose binds only to loopback.
package packaging

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"cvmanager.dev/cvmanager/pkg/version"
	"sigs.k8s.io/yaml"
)

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func read(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(), name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestDockerfileRules(t *testing.T) {
	df := read(t, "Dockerfile")
	rules := []struct{ what, pattern string }{
		{"a named build stage", `(?m)^FROM golang:\S+ AS build$`},
		{"a distroless non-root runtime", `(?m)^FROM gcr\.io/distroless/static\S*:nonroot$`},
		{"a static build", `CGO_ENABLED=0 go build -trimpath`},
		{"the shipped build tags", `-tags ` + regexp.QuoteMeta(version.BuildTags) + ` `},
		{"a numeric non-root USER", `(?m)^USER 65532:65532$`},
		{"the controller's port exposed", `(?m)^EXPOSE 8081$`},
		{"OCI labels", `org\.opencontainers\.image\.title=`},
		{"an exec-form entrypoint", `(?m)^ENTRYPOINT \["/usr/local/bin/cvmanager"\]$`},
		{"listening on all interfaces inside the container", `--bind-address=0\.0\.0\.0`},
	}
	for _, r := range rules {
		if !regexp.MustCompile(r.pattern).MatchString(df) {
			t.Errorf("Dockerfile lacks %s (%s)", r.what, r.pattern)
		}
	}
	if regexp.MustCompile(`(?m)^USER (root|0)\b`).MatchString(df) || strings.Contains(df, "ADD http") {
		t.Error("Dockerfile runs as root or downloads with ADD")
	}
}

// TestBinaryIsStatic builds cmd/cvmanager with the Dockerfile's flags and
// checks the ELF has no interpreter and no shared libraries, so it runs on
// distroless/static.
func TestBinaryIsStatic(t *testing.T) {
	out := filepath.Join(t.TempDir(), "cvmanager")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", version.BuildTags, "-ldflags", "-s -w -X cvmanager.dev/cvmanager/pkg/version.Version=v9.9.9", "-o", out, "./cmd/cvmanager")
	cmd.Dir = root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has a dynamic interpreter")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("binary links shared libraries: %v", libs)
	}
	version, err := exec.Command(out, "version").Output()
	if err != nil || !strings.Contains(string(version), "v9.9.9") {
		t.Errorf("version stamping: %q %v", version, err)
	}
}

func TestComposeBindsLoopbackOnly(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Ports []string `json:"ports"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "docker-compose.yml")), &compose); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"registry", "cvmanager"} {
		svc, ok := compose.Services[name]
		if !ok {
			t.Errorf("compose lacks service %s", name)
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond loopback", name, p)
			}
		}
	}
}

// TestShippedBuildLinksNoGoPlugins: with the shipped build tags no package
// of the binary imports Go's plugin package, which would export every
// symbol and cost resident memory in every controller (pkg/version.BuildTags).
func TestShippedBuildLinksNoGoPlugins(t *testing.T) {
	cmd := exec.Command("go", "list", "-tags", version.BuildTags, "-deps", "-f", "{{.ImportPath}}", "./cmd/cvmanager")
	cmd.Dir = root()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list named only %d packages", len(deps))
	}
	if slices.Contains(deps, "plugin") {
		t.Error("the shipped build links Go's plugin package; find the importer with `go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/cvmanager | grep -w plugin`")
	}
}

// TestControllerLinksNoHelm: the binary `run` executes does not link the
// Helm SDK, which only the state commands need (they live in
// cmd/cvmanager-state); linked in, it grew the controller's idle RSS.
func TestControllerLinksNoHelm(t *testing.T) {
	deps := func(pkg string) []string {
		cmd := exec.Command("go", "list", "-tags", version.BuildTags, "-deps", "-f", "{{.ImportPath}}", pkg)
		cmd.Dir = root()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	hasHelm := func(deps []string) bool {
		return slices.ContainsFunc(deps, func(p string) bool { return strings.HasPrefix(p, "helm.sh/") })
	}
	if hasHelm(deps("./cmd/cvmanager")) {
		t.Error("./cmd/cvmanager links helm.sh/...; find the importer with `go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./cmd/cvmanager | grep helm.sh`")
	}
	if !hasHelm(deps("./cmd/cvmanager-state")) {
		t.Error("./cmd/cvmanager-state does not link the Helm SDK: --helm-releases cannot work")
	}
}
