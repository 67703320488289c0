// Package sigstoretest signs images in a test registry the way cosign
// publishes signatures, with the sigstore libraries and keys made in the
// test: tag-scheme signatures (sha256-<hex>.sig) signed with a key or keyless
// (a certificate from sigstore-go's virtual Sigstore CA), and Sigstore
// bundles attached as OCI referrers. Helpers can also publish what an
// attacker would: a signature over another digest, a payload altered after
// signing.
package sigstoretest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
)

// Key is a cosign-style ECDSA P-256 key pair.
type Key struct {
	signer signature.Signer
	pub    []byte
}

// NewKey makes a key pair.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Key{signer: sv, pub: pub}
}

// PublicPEM is the key's cosign.pub.
func (k *Key) PublicPEM() []byte { return k.pub }

// Signature is one tag-scheme signature layer to publish.
type Signature struct {
	Payload   []byte
	Signature []byte
	// CertPEM is set for keyless signatures.
	CertPEM []byte
}

// Payload is the simple-signing payload cosign signs for repo@digest.
func Payload(t testing.TB, repo, digest string) []byte {
	t.Helper()
	d, err := name.NewDigest(repo+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	body, err := payload.Cosign{Image: d}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Sign signs the payload for repo@digest with the key.
func (k *Key) Sign(t testing.TB, repo, digest string) Signature {
	t.Helper()
	p := Payload(t, repo, digest)
	sig, err := k.signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	return Signature{Payload: p, Signature: sig}
}

// CA is a virtual Sigstore (Fulcio-like CA) for keyless signatures.
type CA struct {
	vs *ca.VirtualSigstore
}

// NewCA starts a virtual Sigstore.
func NewCA(t testing.TB) *CA {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return &CA{vs: vs}
}

// TrustedRootJSON is a trusted_root.json holding the CA (no logs: the
// offline, private-CA case).
func (c *CA) TrustedRootJSON(t testing.TB) []byte {
	t.Helper()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, c.vs.FulcioCertificateAuthorities(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// Sign signs the payload for repo@digest keyless, as subject from issuer.
func (c *CA) Sign(t testing.TB, subject, issuer, repo, digest string) Signature {
	t.Helper()
	cert, priv, err := c.vs.GenerateLeafCert(subject, issuer)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	p := Payload(t, repo, digest)
	sig, err := signer.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := cryptoutils.MarshalCertificateToPEM(cert)
	if err != nil {
		t.Fatal(err)
	}
	return Signature{Payload: p, Signature: sig, CertPEM: certPEM}
}

// PushSignatures publishes signatures for digest in repo (host/path) under
// the cosign tag sha256-<hex>.sig.
func PushSignatures(t testing.TB, repo, digest string, sigs ...Signature) {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, s := range sigs {
		ann := map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(s.Signature)}
		if len(s.CertPEM) > 0 {
			ann["dev.sigstore.cosign/certificate"] = string(s.CertPEM)
		}
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer: static.NewLayer(s.Payload, "application/vnd.dev.cosign.simplesigning.v1+json"), Annotations: ann,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tag, err := name.NewTag(repo+":"+strings.Replace(digest, ":", "-", 1)+".sig", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

// PushBundle signs the image manifest of repo@digest into a Sigstore
// bundle with a fresh sigstore-go key pair and attaches it as an OCI
// referrer; it returns the key's PEM. tamper, when set, alters the bundle
// JSON before it is pushed.
func PushBundle(t testing.TB, repo, digest string, tamper func([]byte) []byte) []byte {
	t.Helper()
	ref, err := name.NewDigest(repo+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := sign.NewEphemeralKeypair(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := sign.Bundle(&sign.PlainData{Data: desc.Manifest}, kp, sign.BundleOptions{Context: context.Background()})
	if err != nil {
		t.Fatal(err)
	}
	body, err := protojson.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		body = tamper(body)
	}
	const artifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	// Without an artifactType field, the referrers list takes the config
	// media type as the artifact type.
	img = mutate.ConfigMediaType(img, artifactType)
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(body, artifactType)})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Subject(img, v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}).(v1.Image)
	bundleDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref.Context().Digest(bundleDigest.String()), img); err != nil {
		t.Fatal(err)
	}
	pem, err := kp.GetPublicKeyPem()
	if err != nil {
		t.Fatal(err)
	}
	return []byte(pem)
}
