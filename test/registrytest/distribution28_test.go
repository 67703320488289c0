package registrytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	clocktesting "k8s.io/utils/clock/testing"

	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/verify"
	"cvmanager.dev/cvmanager/test/faultproxy"
	"cvmanager.dev/cvmanager/test/sigstoretest"
)

// debianRegistry is Debian's docker-registry package: CNCF Distribution
// 2.8, the registry many users run, with no referrers API.
const debianRegistry = "/usr/bin/docker-registry"

// startDistribution28 runs Debian's docker-registry on a free port of
// 127.0.0.1 with filesystem storage in a temporary directory, stopped (its
// PID, nothing else) when the test ends.
func startDistribution28(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(debianRegistry); err != nil {
		t.Fatalf("%s is missing: install Debian's docker-registry package (`make distribution`; `make test` does it)", debianRegistry)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(debianRegistry, "serve", cfgPath)
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("docker-registry did not listen on %s within 30 s:\n%s", addr, log)
		}
	}
}

// TestUnsignedCheckCostOnDistribution28 measures what docs/supply-chain.md
// states, on the registry a user runs: checking an unsigned image on
// Distribution 2.8 (no referrers API) costs 3 requests (.sig, referrers,
// referrers tag fallback, all 404), a tag-scheme signed one 2.
func TestUnsignedCheckCostOnDistribution28(t *testing.T) {
	proxy := faultproxy.StartForTest(t, startDistribution28(t))
	repo := proxy.Repo("team/app")
	push := func(tag string) string {
		t.Helper()
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewTag(repo+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	unsigned, unsigned2, signed := push("v1"), push("v3"), push("v2")
	key := sigstoretest.NewKey(t)
	sigstoretest.PushSignatures(t, repo, signed, key.Sign(t, repo, signed))

	v := verify.New(registry.NewOCI(registry.OCIOptions{InsecureHosts: []string{proxy.Host}}), clocktesting.NewFakeClock(time.Now()))
	policy := verify.Policy{Keys: [][]byte{key.PublicPEM()}}
	check := func(digest string, want bool) []string {
		t.Helper()
		before := len(proxy.Requests())
		r, err := v.Verify(context.Background(), registry.Repo{Name: repo}, digest, policy)
		if err != nil || r.Verified != want {
			t.Fatalf("Verify(%s) = %+v, %v; want verified %v", digest, r, err, want)
		}
		var out []string
		for _, req := range proxy.Requests()[before:] {
			out = append(out, fmt.Sprintf("%s %s %d", req.Method, req.Path, req.Status))
		}
		return out
	}
	// The first check also pings /v2/ (once per host and process).
	first := check(unsigned, false)
	t.Logf("unsigned, first contact with Distribution 2.8: %d requests:\n%s", len(first), strings.Join(first, "\n"))
	un := check(unsigned2, false)
	t.Logf("unsigned on Distribution 2.8: %d requests:\n%s", len(un), strings.Join(un, "\n"))
	want := []string{".sig 404", "/referrers/sha256:", "/manifests/sha256-"}
	if len(un) != len(want) {
		t.Errorf("unsigned on Distribution 2.8: %d requests, want %d (the .sig 404, the referrers API 404 and its tag fallback 404), as docs/supply-chain.md says:\n%s",
			len(un), len(want), strings.Join(un, "\n"))
	} else {
		for i, w := range want {
			if !strings.Contains(un[i], w) || !strings.HasSuffix(un[i], " 404") {
				t.Errorf("request %d: %q, want %q answered 404", i+1, un[i], w)
			}
		}
	}
	si := check(signed, true)
	t.Logf("signed on Distribution 2.8: %d requests:\n%s", len(si), strings.Join(si, "\n"))
	if len(si) != 2 {
		t.Errorf("signed on Distribution 2.8: %d requests, want 2 (the .sig manifest and its payload):\n%s", len(si), strings.Join(si, "\n"))
	}
}
