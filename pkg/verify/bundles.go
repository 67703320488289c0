package verify

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// BundleArtifactPrefix starts the artifact type of a Sigstore bundle
// referrer (application/vnd.dev.sigstore.bundle.v0.3+json).
const BundleArtifactPrefix = "application/vnd.dev.sigstore.bundle"

// fetchedBundle is a bundle referrer as read, or why it could not be read.
type fetchedBundle struct {
	bundle    *bundle.Bundle
	malformed string
}

// bundles reads the Sigstore bundles that refer to digest.
func (v *Verifier) bundles(ctx context.Context, repo registry.Repo, digest string) ([]fetchedBundle, error) {
	refs, err := v.Reader.Referrers(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	var out []fetchedBundle
	for _, d := range refs {
		if !strings.HasPrefix(d.ArtifactType, BundleArtifactPrefix) || len(out) >= maxSignatures {
			continue
		}
		b, err := v.readBundle(ctx, repo, d)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// readBundle GETs a bundle's manifest and its one layer, the bundle JSON.
func (v *Verifier) readBundle(ctx context.Context, repo registry.Repo, d v1.Descriptor) (fetchedBundle, error) {
	m, err := v.Reader.Manifest(ctx, repo, d.Digest.String())
	if notFound(err) {
		return fetchedBundle{malformed: "bundle manifest " + d.Digest.String() + " is missing"}, nil
	}
	if err != nil {
		return fetchedBundle{}, err
	}
	layer, err := bundleLayer(m.Body)
	if err != nil {
		return fetchedBundle{malformed: err.Error()}, nil
	}
	body, err := v.Reader.Blob(ctx, repo, layer.Digest.String(), maxPayloadBytes)
	if notFound(err) {
		return fetchedBundle{malformed: "bundle blob " + layer.Digest.String() + " is missing"}, nil
	}
	if err != nil {
		return fetchedBundle{}, err
	}
	b, err := ParseBundle(body)
	if err != nil {
		return fetchedBundle{malformed: err.Error()}, nil
	}
	return fetchedBundle{bundle: b}, nil
}

func bundleLayer(body []byte) (v1.Descriptor, error) {
	m, err := v1.ParseManifest(strings.NewReader(string(body)))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("bundle manifest: %w", err)
	}
	if len(m.Layers) != 1 {
		return v1.Descriptor{}, fmt.Errorf("bundle manifest has %d layers, want 1", len(m.Layers))
	}
	return m.Layers[0], nil
}

// ParseBundle reads a Sigstore bundle with sigstore-go.
func ParseBundle(body []byte) (*bundle.Bundle, error) {
	var b bundle.Bundle
	if err := b.UnmarshalJSON(body); err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	return &b, nil
}

// verifyBundle checks a bundle over digest: a message signature over the
// manifest digest or a DSSE statement whose subject is it.
func verifyBundle(f fetchedBundle, a *anchors, digest string) Result {
	if f.malformed != "" {
		return Result{Reason: ReasonTamperedSignature, Message: "tampered signature: " + f.malformed}
	}
	raw, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil || !strings.HasPrefix(digest, "sha256:") {
		return Result{Reason: ReasonDigestMismatch, Message: "not a sha256 digest: " + digest}
	}
	artifact := func() sgverify.ArtifactPolicyOption { return sgverify.WithArtifactDigest("sha256", raw) }
	content, err := f.bundle.VerificationContent()
	if err != nil {
		return Result{Reason: ReasonTamperedSignature, Message: "tampered signature: " + err.Error()}
	}
	var signer string
	var r Result
	if content.Certificate() != nil {
		signer, r = keyless(a, a.bundles, f.bundle, artifact)
	} else {
		signer, r = bundleKey(a, f.bundle, content, artifact)
	}
	if r.Verified {
		return Result{Verified: true, Reason: ReasonVerified, Signer: signer, Message: "signed by " + signer}
	}
	return r
}

// bundleKey verifies a key-signed bundle. Its hint names the key, so a
// bundle from a trusted key that no longer verifies was altered, and one
// whose key is unknown is a wrong key.
func bundleKey(a *anchors, b *bundle.Bundle, content sgverify.VerificationContent, artifact func() sgverify.ArtifactPolicyOption) (string, Result) {
	hint := ""
	if pk := content.PublicKey(); pk != nil {
		hint = pk.Hint()
	}
	var last Result
	for _, k := range a.keys {
		if hint != "" && hint != k.hint {
			continue
		}
		_, err := k.verifier.Verify(b, sgverify.NewPolicy(artifact(), sgverify.WithKey()))
		if err == nil {
			return "key " + k.fingerprint, Result{Verified: true}
		}
		last = classify(err)
		if hint == "" && last.Reason == ReasonTamperedSignature {
			last = Result{Reason: ReasonWrongKey, Message: wrongKeyMessage(a)} // no hint: cannot tell
		}
	}
	if last.Reason == "" {
		return "", Result{Reason: ReasonWrongKey, Message: "the bundle is signed with key " + hint + ", which the policy does not trust"}
	}
	return "", last
}
