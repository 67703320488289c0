package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// key is one trusted public key, ready for sigstore-go.
type key struct {
	// hint is how Sigstore bundles name a key: base64 of the SHA-256 of
	// its DER SubjectPublicKeyInfo.
	hint string
	// fingerprint is the hex form, shown as the signer.
	fingerprint string
	verifier    *sgverify.Verifier
}

// anchors is a Policy compiled once per policy hash.
type anchors struct {
	keys       []key
	identities sgverify.CertificateIdentities
	raw        []Identity
	// tagScheme verifies certificates without a log: the tag scheme's
	// signatures carry no timestamps this package reads.
	tagScheme *sgverify.Verifier
	// bundles verifies keyless bundles with the timestamps they carry.
	bundles *sgverify.Verifier
}

// Compile checks that a policy can be used (keys parse, regular
// expressions compile, the trusted root loads), for flags read at start.
func Compile(p Policy) error {
	_, err := compile(p)
	return err
}

// compile parses the policy's keys, identities and trusted root.
func compile(p Policy) (*anchors, error) {
	a := &anchors{raw: p.Identities}
	for i, pemKey := range p.Keys {
		k, err := compileKey(pemKey)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		a.keys = append(a.keys, k)
	}
	for _, id := range p.Identities {
		ci, err := sgverify.NewShortCertificateIdentity(id.Issuer, "", id.Subject, anchored(id.SubjectRegExp))
		if err != nil {
			return nil, fmt.Errorf("keyless identity %s: %w", id.Issuer, err)
		}
		a.identities = append(a.identities, ci)
	}
	if len(p.Identities) == 0 {
		return a, nil
	}
	if len(p.TrustedRoot) == 0 {
		return nil, errors.New("keyless identities need a trusted root (spec.policy.verify.trustedRoot or --signature-trusted-root)")
	}
	tr, err := root.NewTrustedRootFromJSON(p.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	if a.tagScheme, err = sgverify.NewVerifier(tr, sgverify.WithCurrentTime()); err != nil {
		return nil, err
	}
	opts := []sgverify.VerifierOption{sgverify.WithCurrentTime()}
	if len(tr.RekorLogs()) > 0 {
		opts = []sgverify.VerifierOption{sgverify.WithTransparencyLog(1), sgverify.WithObserverTimestamps(1)}
	}
	a.bundles, err = sgverify.NewVerifier(tr, opts...)
	return a, err
}

func anchored(re string) string {
	if re == "" {
		return ""
	}
	return "^(?:" + re + ")$"
}

// compileKey loads a PEM public key into a sigstore-go verifier that trusts
// it for any hint: the tag scheme names no key, and a bundle's hint is
// compared by the caller.
func compileKey(pemKey []byte) (key, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemKey)
	if err != nil {
		return key{}, fmt.Errorf("not a PEM public key: %w", err)
	}
	sv, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return key{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(der)
	expiring := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return expiring, nil })
	v, err := sgverify.NewVerifier(tm, sgverify.WithNoObserverTimestamps())
	if err != nil {
		return key{}, err
	}
	return key{hint: base64.StdEncoding.EncodeToString(sum[:]), fingerprint: hex.EncodeToString(sum[:8]), verifier: v}, nil
}
