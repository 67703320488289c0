package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	buildinfo "cvmanager.dev/cvmanager/pkg/version"
)

const (
	module     = "cvmanager.dev/cvmanager"
	binaryPath = "usr/local/bin/cvmanager"
	// statePath is the state commands' binary (with the Helm SDK), which
	// `cvmanager state` runs from beside itself.
	statePath = "usr/local/bin/cvmanager-state"
	caPath    = "etc/ssl/certs/ca-certificates.crt"
	// nonRoot is the uid and gid the controller runs as (distroless' nonroot).
	nonRoot = 65532
)

// buildIndex builds one image per platform and puts them under one OCI index.
func buildIndex(work string, platforms []v1.Platform, caPEM []byte, o options) (v1.ImageIndex, error) {
	base, err := baseLayer(caPEM, o.created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := buildImage(work, p, base, o)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", p.OS, p.Architecture, err)
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	return idx, nil
}

func buildImage(work string, p v1.Platform, base v1.Layer, o options) (v1.Image, error) {
	bin, err := buildBinary(work, p.Architecture, o.version, o.commit, "cvmanager")
	if err != nil {
		return nil, err
	}
	stateBin, err := buildBinary(work, p.Architecture, o.version, o.commit, "cvmanager-state")
	if err != nil {
		return nil, err
	}
	binLayer, err := binaryLayer(bin, stateBin, o.created)
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: time.Unix(o.created, 0).UTC()}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "cvmanager base: CA bundle, non-root user"}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: created, CreatedBy: "cvmanager binary " + o.version}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = p.OS, p.Architecture, created
	cfg.Config = imageConfig(o.version, o.commit, created)
	return mutate.ConfigFile(img, cfg)
}

// imageConfig is what the Dockerfile declares: non-root user, exec-form
// entrypoint, the controller's default command and port, OCI labels.
func imageConfig(version, commit string, created v1.Time) v1.Config {
	return v1.Config{
		User:         fmt.Sprintf("%d:%d", nonRoot, nonRoot),
		Entrypoint:   []string{"/" + binaryPath},
		Cmd:          []string{"run", "--bind-address=0.0.0.0", "--port=8081"},
		ExposedPorts: map[string]struct{}{"8081/tcp": {}},
		WorkingDir:   "/home/nonroot",
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/" + caPath},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "cvmanager",
			"org.opencontainers.image.description": "Continuous deployment for Kubernetes by registry polling",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    commit,
			"org.opencontainers.image.created":     created.Format(time.RFC3339),
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
}

// buildBinary cross-compiles the static binary ./cmd/<name> the way the
// Dockerfile does.
func buildBinary(work, arch, version, commit, name string) (string, error) {
	out := filepath.Join(work, arch, name)
	ldflags := fmt.Sprintf("-s -w -X %[1]s/pkg/version.Version=%[2]s -X %[1]s/pkg/version.Commit=%[3]s", module, version, commit)
	cmd := exec.Command("go", "build", "-trimpath", "-tags", buildinfo.BuildTags, "-ldflags", ldflags, "-o", out, "./cmd/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	log.Printf("building %s for linux/%s", name, arch)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return out, nil
}

// caBundle is the Mozilla (NSS) root set shipped in the x509roots module,
// which comes from the Go module proxy like every other dependency, plus
// the extra CAs a platform team adds for a private registry. Roots that NSS
// trusts only with a distrust-after date are left out: a PEM bundle cannot
// carry that constraint, and leaving them out is the safe side.
func caBundle(extraFile string) ([]byte, error) {
	var buf bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	if extraFile == "" {
		return buf.Bytes(), nil
	}
	extra, err := os.ReadFile(extraFile)
	if err != nil {
		return nil, fmt.Errorf("--extra-ca: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(extra) {
		return nil, fmt.Errorf("--extra-ca %s: no PEM certificate in it", extraFile)
	}
	buf.Write(extra)
	return buf.Bytes(), nil
}

// tarEntry is one file or directory of a layer.
type tarEntry struct {
	path     string
	mode     int64
	uid, gid int
	data     []byte // nil for a directory
}

// baseLayer holds what distroless/static gives the Dockerfile's image: the
// users, the CA bundle, a writable /tmp and the non-root user's home.
func baseLayer(caPEM []byte, created int64) (v1.Layer, error) {
	return layerOf(created, []tarEntry{
		{path: "etc/", mode: 0o755},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "etc/ssl/", mode: 0o755},
		{path: "etc/ssl/certs/", mode: 0o755},
		{path: caPath, mode: 0o644, data: caPEM},
		{path: "home/", mode: 0o755},
		{path: "home/nonroot/", mode: 0o700, uid: nonRoot, gid: nonRoot},
		{path: "tmp/", mode: 0o1777},
	})
}

func binaryLayer(path, stateBin string, created int64) (v1.Layer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	stateData, err := os.ReadFile(stateBin)
	if err != nil {
		return nil, err
	}
	return layerOf(created, []tarEntry{
		{path: "usr/", mode: 0o755},
		{path: "usr/local/", mode: 0o755},
		{path: "usr/local/bin/", mode: 0o755},
		{path: binaryPath, mode: 0o755, data: data},
		{path: statePath, mode: 0o755, data: stateData},
	})
}

// layerOf writes the entries into a tar with fixed times and owners, so the
// same inputs give the same layer digest, and gzips it as an OCI layer.
func layerOf(created int64, entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: time.Unix(created, 0), Format: tar.FormatPAX}
		if e.data == nil {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// emptyLayoutIndex is the top-level index of a new OCI layout.
func emptyLayoutIndex() v1.ImageIndex {
	return mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
}
