package packaging

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"cvmanager.dev/cvmanager/test/localregistry"
	"cvmanager.dev/cvmanager/test/testcerts"
)

// builtImage is what `make image` produced in TestImage.
type builtImage struct {
	ref    string // pushed reference
	index  v1.ImageIndex
	layout string // OCI layout directory
	ca     testcerts.Pair
}

// TestImage builds the image the way a user does (`make image` with a push to
// a real registry), reads it back and runs the binary it carries.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the binary for two platforms")
	}
	b := buildAndPush(t)
	t.Run("index has both platforms", func(t *testing.T) { checkPlatforms(t, b.index) })
	t.Run("config matches the Dockerfile", func(t *testing.T) { checkConfigs(t, b.index) })
	t.Run("layout holds the pushed index", func(t *testing.T) { checkLayout(t, b) })

	root := extract(t, hostImage(t, b.index))
	t.Run("binary prints the build's version", func(t *testing.T) {
		out := runFromImage(t, root, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), "version")
		if !strings.Contains(out, "cvmanager v9.9.9 (commit abc123") {
			t.Fatalf("version output %q lacks the build's version", out)
		}
	})
	t.Run("state commands run the image's cvmanager-state", func(t *testing.T) {
		// `cvmanager state` finds cvmanager-state beside itself; an empty
		// local path is the smallest real answer it gives.
		out := runFromImage(t, root, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), "state", "show", "local", "--path", t.TempDir())
		if !strings.Contains(out, ": empty") {
			t.Fatalf("state show output %q: want the empty path reported", out)
		}
	})
	t.Run("shell completion of state comes from the image's cvmanager-state", func(t *testing.T) {
		out := runFromImage(t, root, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), "__complete", "state", "")
		for _, sub := range []string{"export", "import", "show", "clear"} {
			if !strings.Contains(out, sub) {
				t.Errorf("completion of `cvmanager state ` lacks %s:\n%s", sub, out)
			}
		}
	})
	t.Run("binary trusts a TLS registry by the image's CA bundle", func(t *testing.T) { checkTLSTrust(t, root, b.ca) })
	t.Run("chart renders the image", func(t *testing.T) { checkChart(t, b) })
}

func buildAndPush(t *testing.T) builtImage {
	t.Helper()
	reg := localregistry.StartForTest(t)
	dir := t.TempDir()
	b := builtImage{ref: reg.Repo("cvmanager") + ":v9.9.9", layout: filepath.Join(dir, "layout"), ca: testcerts.Write(t, dir, "private registry CA")}
	cmd := exec.Command("make", "--no-print-directory", "image", "VERSION=v9.9.9", "COMMIT=abc123", "SOURCE_DATE_EPOCH=1700000000",
		"IMAGE_OUT="+b.layout, "IMAGE_PUSH="+b.ref, "IMAGE_FLAGS=--insecure --extra-ca "+b.ca.CertFile)
	cmd.Dir = root()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	ref, err := name.ParseReference(b.ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if b.index, err = remote.Index(ref); err != nil {
		t.Fatalf("reading the pushed index back: %v", err)
	}
	return b
}

func checkPlatforms(t *testing.T, idx v1.ImageIndex) {
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range manifest.Manifests {
		if m.Platform != nil {
			got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
		}
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, got); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
}

// checkConfigs compares every platform's config with what the Dockerfile
// declares, so the two ways of building cannot drift apart.
func checkConfigs(t *testing.T, idx v1.ImageIndex) {
	want := dockerfileDeclarations(t)
	forEachImage(t, idx, func(p v1.Platform, img v1.Image) {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != p.Architecture || cfg.OS != p.OS {
			t.Errorf("%s: config says %s/%s", p.Architecture, cfg.OS, cfg.Architecture)
		}
		got := declarations{User: cfg.Config.User, Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Labels: map[string]string{}}
		for port := range cfg.Config.ExposedPorts {
			got.Expose = append(got.Expose, port)
		}
		for k := range want.Labels {
			got.Labels[k] = cfg.Config.Labels[k]
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: image config differs from the Dockerfile (-Dockerfile +image):\n%s", p.Architecture, diff)
		}
		if v := cfg.Config.Labels["org.opencontainers.image.version"]; v != "v9.9.9" {
			t.Errorf("%s: version label %q, want v9.9.9", p.Architecture, v)
		}
	})
}

// declarations are the runtime settings both build paths must agree on.
type declarations struct {
	User       string
	Entrypoint []string
	Cmd        []string
	Expose     []string
	Labels     map[string]string // the Dockerfile's fixed-value labels
}

func dockerfileDeclarations(t *testing.T) declarations {
	df := read(t, "Dockerfile")
	final := df[strings.LastIndex(df, "\nFROM "):]
	d := declarations{Labels: map[string]string{}}
	d.User = firstMatch(t, final, `(?m)^USER (\S+)$`)
	d.Entrypoint = jsonArray(t, firstMatch(t, final, `(?m)^ENTRYPOINT (\[.*\])$`))
	d.Cmd = jsonArray(t, firstMatch(t, final, `(?m)^CMD (\[.*\])$`))
	d.Expose = []string{firstMatch(t, final, `(?m)^EXPOSE (\d+)$`) + "/tcp"}
	for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z]+)="([^"$]*)"`).FindAllStringSubmatch(final, -1) {
		d.Labels[m[1]] = m[2]
	}
	if len(d.Labels) == 0 {
		t.Fatal("no fixed OCI labels found in the Dockerfile")
	}
	return d
}

func firstMatch(t *testing.T, s, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("Dockerfile's final stage lacks %s", pattern)
	}
	return m[1]
}

func jsonArray(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func forEachImage(t *testing.T, idx v1.ImageIndex, fn func(v1.Platform, v1.Image)) {
	t.Helper()
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range manifest.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		fn(*m.Platform, img)
	}
}

func checkLayout(t *testing.T, b builtImage) {
	local, err := layout.ImageIndexFromPath(b.layout)
	if err != nil {
		t.Fatalf("reading the OCI layout: %v", err)
	}
	manifest, err := local.IndexManifest()
	if err != nil || len(manifest.Manifests) != 1 {
		t.Fatalf("layout index: %v, %d entries, want 1", err, len(manifest.Manifests))
	}
	pushed, _ := b.index.Digest()
	if manifest.Manifests[0].Digest != pushed {
		t.Errorf("layout holds %s, the registry %s", manifest.Manifests[0].Digest, pushed)
	}
}

// hostImage picks the image this machine can run.
func hostImage(t *testing.T, idx v1.ImageIndex) v1.Image {
	t.Helper()
	var found v1.Image
	forEachImage(t, idx, func(p v1.Platform, img v1.Image) {
		if p.Architecture == runtime.GOARCH {
			found = img
		}
	})
	if found == nil {
		t.Skipf("no image for this machine's architecture %s", runtime.GOARCH)
	}
	return found
}

// extract unpacks the image's filesystem and checks who owns what: the binary
// belongs to root and is not writable by the non-root user it runs as.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	headers := map[string]*tar.Header{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		headers[strings.TrimSuffix(hdr.Name, "/")] = hdr
		writeEntry(t, dir, hdr, tr)
	}
	for _, name := range []string{"usr/local/bin/cvmanager", "usr/local/bin/cvmanager-state"} {
		bin := headers[name]
		if bin == nil || bin.Uid != 0 || bin.Mode&0o022 != 0 || bin.Mode&0o111 == 0 {
			t.Fatalf("binary entry %s %+v: want root-owned, executable, not group/world writable", name, bin)
		}
	}
	if passwd, _ := os.ReadFile(filepath.Join(dir, "etc/passwd")); !strings.Contains(string(passwd), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the non-root user 65532:\n%s", passwd)
	}
	return dir
}

func writeEntry(t *testing.T, dir string, hdr *tar.Header, r io.Reader) {
	t.Helper()
	target := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
	case tar.TypeReg:
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, os.FileMode(hdr.Mode)&0o755|0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// runFromImage runs the image's binary with only the image's CA bundle (or
// the given one) trusted: SSL_CERT_DIR points at an empty directory so the
// machine's own certificates play no part.
func runFromImage(t *testing.T, root, caFile string, args ...string) string {
	t.Helper()
	out, err := runFromImageErr(t, root, caFile, args...)
	if err != nil {
		t.Fatalf("cvmanager %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runFromImageErr(t *testing.T, root, caFile string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(root, "usr/local/bin/cvmanager"), args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "SSL_CERT_FILE=" + caFile, "SSL_CERT_DIR=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func checkTLSTrust(t *testing.T, root string, ca testcerts.Pair) {
	bundle := filepath.Join(root, "etc/ssl/certs/ca-certificates.crt")
	if n := countCerts(t, bundle); n < 100 {
		t.Errorf("the image's CA bundle holds %d certificates; want the public roots (over 100)", n)
	}
	reg := localregistry.StartForTest(t)
	if _, err := reg.Push("app", "v1"); err != nil {
		t.Fatal(err)
	}
	host := serveTLS(t, reg.URL(), ca)
	args := []string{"cr", "tags", "get", "--repo", host + "/app", "--version", "v1"}
	if out := runFromImage(t, root, bundle, args...); !strings.Contains(out, "v1") {
		t.Errorf("tags get through TLS: %q", out)
	}
	// The same call without the image's bundle must fail, or the test proved nothing.
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runFromImageErr(t, root, empty, args...); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("without the image's CA bundle the call should fail on the certificate; got err=%v output %q", err, out)
	}
}

func countCerts(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		n++
	}
	return n
}

// serveTLS puts a TLS front, with the private CA's certificate, before the
// plain-HTTP registry and returns its host:port.
func serveTLS(t *testing.T, target string, ca testcerts.Pair) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// checkChart renders the Helm chart with the built image pinned by digest and
// checks the pod runs that exact image as the image's own user.
func checkChart(t *testing.T, b builtImage) {
	digest, err := b.index.Digest()
	if err != nil {
		t.Fatal(err)
	}
	repo := strings.TrimSuffix(b.ref, ":v9.9.9")
	helmBin, err := exec.Command(filepath.Join(root(), "hack", "build-helm.sh")).Output()
	if err != nil {
		t.Fatalf("building helm: %v", err)
	}
	cmd := exec.Command(strings.TrimSpace(string(helmBin)), "template", "cvm", filepath.Join(root(), "charts", "cvmanager"),
		"--set", "image.repository="+repo, "--set", "image.tag=v9.9.9", "--set", "image.digest="+digest.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	want := "image: \"" + b.ref + "@" + digest.String() + "\""
	if !strings.Contains(string(out), want) {
		t.Errorf("rendered chart lacks %s", want)
	}
	if !strings.Contains(string(out), "runAsUser: 65532") {
		t.Error("rendered chart does not run as the image's user 65532")
	}
}
