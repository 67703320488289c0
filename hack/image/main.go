// Command image builds cvmanager's container image without a container
// engine: a static binary per platform, a CA bundle, a non-root user and the
// OCI labels, assembled with go-containerregistry into one OCI image index.
// It writes the index as an OCI layout and, with --push, pushes it.
//
// It produces the same image as the Dockerfile (same files, user, entrypoint,
// command, port and labels; test/packaging compares the two), for machines
// where no Docker daemon runs.
//
//	go run ./hack/image --version v1.2.3 --output bin/image --push registry.example.com/cvmanager:v1.2.3
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// options are the command line of the image builder.
type options struct {
	output    string
	push      string
	platforms string
	version   string
	commit    string
	created   int64
	extraCA   string
	insecure  bool
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("[image] ")
	opts := parseFlags()
	if err := run(opts); err != nil {
		log.Fatal(err)
	}
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.output, "output", "bin/image", "directory the OCI layout is written to (replaced)")
	flag.StringVar(&o.push, "push", "", "image reference to push the index to (e.g. 127.0.0.1:5000/cvmanager:dev); empty: no push")
	flag.StringVar(&o.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	flag.StringVar(&o.version, "version", "v0.0.0-dev", "version stamped into the binary and the labels")
	flag.StringVar(&o.commit, "commit", "unknown", "git commit stamped into the binary and the labels")
	flag.Int64Var(&o.created, "created", 0, "image creation time, Unix seconds (default: $SOURCE_DATE_EPOCH, else 0) so builds are reproducible")
	flag.StringVar(&o.extraCA, "extra-ca", "", "PEM file of extra CAs appended to the image's CA bundle (a private registry's CA)")
	flag.BoolVar(&o.insecure, "insecure", false, "push over plain HTTP (a local registry)")
	flag.Parse()
	if o.created == 0 {
		fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), &o.created)
	}
	return o
}

func run(o options) error {
	start := time.Now()
	platforms, err := parsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	caPEM, err := caBundle(o.extraCA)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "cvmanager-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	idx, err := buildIndex(work, platforms, caPEM, o)
	if err != nil {
		return err
	}
	if err := writeLayout(o.output, idx); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	log.Printf("wrote OCI layout %s (index %s, %d platforms) in %s", o.output, digest, len(platforms), time.Since(start).Round(time.Second))
	if o.push == "" {
		return nil
	}
	return push(o.push, idx, o.insecure)
}

// parsePlatforms reads "linux/amd64,linux/arm64"; only linux is supported,
// since the binary is built for the container's kernel.
func parsePlatforms(list string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(list, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || osName != "linux" || arch == "" {
			return nil, fmt.Errorf("platform %q: want linux/<arch>", p)
		}
		out = append(out, v1.Platform{OS: osName, Architecture: arch})
	}
	return out, nil
}

// writeLayout replaces dir with an OCI layout holding the index.
func writeLayout(dir string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	p, err := layout.Write(dir, emptyLayoutIndex())
	if err != nil {
		return err
	}
	return p.AppendIndex(idx)
}

func push(ref string, idx v1.ImageIndex, insecure bool) error {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return fmt.Errorf("--push %q: %w", ref, err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing %s: %w", r, err)
	}
	digest, _ := idx.Digest()
	log.Printf("pushed %s@%s", r, digest)
	return nil
}
