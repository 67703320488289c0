package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"cvmanager.dev/cvmanager/pkg/registry"
)

// Annotations and media type cosign writes on a tag-scheme signature layer.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	AnnotationCertificate  = "dev.sigstore.cosign/certificate"
)

// sigLayer is one signature of the tag scheme: the payload (a
// simple-signing document naming the image digest) and its signature,
// with the signer's certificate when it was signed keyless.
type sigLayer struct {
	payload     []byte
	signature   []byte
	certificate *x509.Certificate
	// malformed is why the layer cannot be a valid signature at all.
	malformed string
}

// tagScheme reads the sha256-<hex>.sig manifest and its payloads. No
// manifest means no tag-scheme signature.
func (v *Verifier) tagScheme(ctx context.Context, repo registry.Repo, digest string) ([]sigLayer, error) {
	m, err := v.Reader.Manifest(ctx, repo, sigTag(digest, ".sig"))
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	layers, err := ParseSignatureManifest(m.Body)
	if err != nil {
		return []sigLayer{{malformed: err.Error()}}, nil
	}
	out := make([]sigLayer, 0, len(layers))
	for _, l := range layers {
		s := signatureOf(l)
		if s.malformed == "" {
			body, err := v.Reader.Blob(ctx, repo, l.Digest.String(), maxPayloadBytes)
			if notFound(err) {
				s.malformed = "payload blob " + l.Digest.String() + " is missing"
			} else if err != nil {
				return nil, err
			}
			s.payload = body
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseSignatureManifest returns the simple-signing layers of a cosign
// signature manifest (at most maxSignatures).
func ParseSignatureManifest(body []byte) ([]v1.Descriptor, error) {
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("signature manifest: %w", err)
	}
	var out []v1.Descriptor
	for _, l := range m.Layers {
		if string(l.MediaType) == SimpleSigningMediaType && len(out) < maxSignatures {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("signature manifest has no simple-signing layer")
	}
	return out, nil
}

// signatureOf decodes a layer's signature and certificate annotations.
func signatureOf(l v1.Descriptor) sigLayer {
	sig, err := base64.StdEncoding.DecodeString(l.Annotations[AnnotationSignature])
	if err != nil || len(sig) == 0 {
		return sigLayer{malformed: "signature annotation is missing or not base64"}
	}
	s := sigLayer{signature: sig}
	if pemCert := l.Annotations[AnnotationCertificate]; pemCert != "" {
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM([]byte(pemCert))
		if err != nil || len(certs) == 0 {
			return sigLayer{malformed: "certificate annotation is not a PEM certificate"}
		}
		s.certificate = certs[0]
	}
	return s
}

// ParsePayload reads a simple-signing payload (sigstore's parser) and
// returns the digest it vouches for.
func ParsePayload(body []byte) (string, error) {
	var p payload.Cosign
	if err := p.UnmarshalJSON(body); err != nil {
		return "", fmt.Errorf("simple-signing payload: %w", err)
	}
	return p.Image.DigestStr(), nil
}

// verify checks one tag-scheme signature against the anchors: the
// signature over the payload first (sigstore-go), then that the payload
// names digest.
func (s sigLayer) verify(a *anchors, digest string) Result {
	if s.malformed != "" {
		return Result{Reason: ReasonTamperedSignature, Message: "tampered signature: " + s.malformed}
	}
	signer, r := s.verifySignature(a)
	if !r.Verified {
		return r
	}
	signed, err := ParsePayload(s.payload)
	if err != nil {
		return Result{Reason: ReasonTamperedSignature, Message: "tampered signature: " + err.Error()}
	}
	if signed != digest {
		return Result{Reason: ReasonDigestMismatch, Signer: signer,
			Message: fmt.Sprintf("the signature by %s is over %s, not %s", signer, signed, digest)}
	}
	return Result{Verified: true, Reason: ReasonVerified, Signer: signer, Message: "signed by " + signer}
}

func (s sigLayer) verifySignature(a *anchors) (string, Result) {
	sum := sha256.Sum256(s.payload)
	entity := &messageEntity{sig: bundle.NewMessageSignature(sum[:], "SHA2_256", s.signature)}
	artifact := func() sgverify.ArtifactPolicyOption { return sgverify.WithArtifact(bytes.NewReader(s.payload)) }
	if s.certificate == nil {
		entity.content = &bundle.PublicKey{}
		for _, k := range a.keys {
			if _, err := k.verifier.Verify(entity, sgverify.NewPolicy(artifact(), sgverify.WithKey())); err == nil {
				return "key " + k.fingerprint, Result{Verified: true}
			}
		}
		return "", Result{Reason: ReasonWrongKey, Message: wrongKeyMessage(a)}
	}
	entity.content = bundle.NewCertificate(s.certificate)
	return keyless(a, a.tagScheme, entity, artifact)
}

func wrongKeyMessage(a *anchors) string {
	if len(a.keys) == 0 {
		return "the image is signed with a key, but the policy trusts no key"
	}
	return fmt.Sprintf("the signature does not verify with any of the %d trusted keys (signed with another key, or altered)", len(a.keys))
}

// keyless verifies a certificate-signed entity: first that the certificate
// chains to the trusted root and signed the artifact, then who it names.
func keyless(a *anchors, v *sgverify.Verifier, entity sgverify.SignedEntity, artifact func() sgverify.ArtifactPolicyOption) (string, Result) {
	if v == nil {
		return "", Result{Reason: ReasonWrongKey, Message: "the image is signed keyless, but the policy has no keyless identity"}
	}
	res, err := v.Verify(entity, sgverify.NewPolicy(artifact(), sgverify.WithoutIdentitiesUnsafe()))
	if err != nil {
		return "", classify(err)
	}
	summary := res.Signature.Certificate
	signer := summary.SubjectAlternativeName + " (" + summary.Extensions.Issuer + ")"
	if _, err := a.identities.Verify(*summary); err != nil {
		return "", Result{Reason: ReasonIdentityMismatch, Signer: signer,
			Message: fmt.Sprintf("signed by %s, which matches no accepted keyless identity", signer)}
	}
	return signer, Result{Verified: true}
}

// classify names a sigstore-go refusal: an untrusted certificate is a
// wrong signer; a signature its own certificate does not verify, or an
// artifact that is not the one signed, was altered or is another's.
func classify(err error) Result {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "artifact does not match") || strings.Contains(msg, "not match digests in statement") ||
		strings.Contains(msg, "does not match any digest in statement") || strings.Contains(msg, "no matching artifact"):
		return Result{Reason: ReasonDigestMismatch, Message: "the signature is over another image: " + msg}
	case strings.Contains(msg, "leaf certificate") || strings.Contains(msg, "log inclusion") || strings.Contains(msg, "timestamps"):
		return Result{Reason: ReasonWrongKey, Message: "the signing certificate is not trusted: " + msg}
	default:
		return Result{Reason: ReasonTamperedSignature, Message: "tampered signature: " + msg}
	}
}

// messageEntity presents a tag-scheme signature to sigstore-go as a
// signed entity without timestamps or log entries.
type messageEntity struct {
	sgverify.BaseSignedEntity
	content sgverify.VerificationContent
	sig     *bundle.MessageSignature
}

func (e *messageEntity) VerificationContent() (sgverify.VerificationContent, error) {
	return e.content, nil
}
func (e *messageEntity) SignatureContent() (sgverify.SignatureContent, error) { return e.sig, nil }
func (e *messageEntity) Version() (string, error)                             { return "v0.3", nil }
func (e *messageEntity) Timestamps() ([][]byte, error)                        { return nil, nil }
func (e *messageEntity) TlogEntries() ([]*tlog.Entry, error)                  { return nil, nil }
