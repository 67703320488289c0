// Package verify decides whether an image was vouched for before cvmanager
// deploys it: it finds the image's signatures the way cosign publishes them
// and checks them against a policy's trust anchors with sigstore-go.
//
// Signatures are found in two places, in this order:
//   - the cosign tag scheme: a manifest tagged sha256-<hex>.sig whose layers
//     are simple-signing payloads, each with its signature (and, for keyless
//     signatures, its certificate) in annotations;
//   - OCI 1.1 referrers of the digest (or their sha256-<hex> tag fallback)
//     whose artifact type is a Sigstore bundle, as `cosign sign
//     --new-bundle-format` and `cosign attest` publish them.
//
// Every cryptographic and format step is sigstore-go's (bundle parsing,
// certificate chains against a trusted root, identity matching, signature
// checks) or sigstore's (the simple-signing payload). This package only reads
// registry manifests and picks the right pieces out of them.
//
// Answers are cached by (repository, digest, policy hash): an image verified
// once costs no request again while the process lives. A refusal is kept
// only for NegativeTTL, so a signature pushed later is found on a later poll.
//
// Request cost of a new digest on a registry (each GET through the
// registry layer's budget): a tag-scheme signature costs 2 (the .sig
// manifest and its payload blob); a bundle found through referrers costs
// 1 (.sig, absent) + 1 or 2 (referrers list, or its tag fallback after a 404)
// + 2 (bundle manifest and blob); an unsigned image 2 or 3.
package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Reasons a verification ends with; they become the Verified condition's
// reason and the history record's reason.
const (
	ReasonVerified          = "Verified"
	ReasonUnsigned          = "Unsigned"
	ReasonWrongKey          = "WrongKey"
	ReasonIdentityMismatch  = "IdentityMismatch"
	ReasonDigestMismatch    = "DigestMismatch"
	ReasonTamperedSignature = "TamperedSignature"
	// ReasonInvalidPolicy: the policy itself cannot be used (a key that
	// does not parse, keyless identities without a trusted root).
	ReasonInvalidPolicy = "InvalidVerifyPolicy"
)

// Policy is what an image's signature must match. Any one anchor that
// verifies is enough.
type Policy struct {
	// Keys are PEM public keys (cosign.pub).
	Keys [][]byte `json:"keys,omitempty"`
	// Identities are accepted keyless signers.
	Identities []Identity `json:"identities,omitempty"`
	// TrustedRoot is a Sigstore trusted_root.json for keyless signatures.
	TrustedRoot []byte `json:"trustedRoot,omitempty"`
}

// Identity is one accepted keyless signer: certificate issuer and subject
// (exact, or SubjectRegExp).
type Identity struct {
	Issuer        string `json:"issuer"`
	Subject       string `json:"subject,omitempty"`
	SubjectRegExp string `json:"subjectRegExp,omitempty"`
}

// Empty reports whether the policy has no anchor at all.
func (p Policy) Empty() bool { return len(p.Keys) == 0 && len(p.Identities) == 0 }

// Hash identifies the policy in cache keys: the same digest checked under
// another policy is checked again.
func (p Policy) Hash() string {
	b, _ := json.Marshal(p) // plain data: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Merge adds other's anchors to p: a CV's anchors join the controller's.
func (p Policy) Merge(other Policy) Policy {
	out := Policy{
		Keys:        append(append([][]byte{}, p.Keys...), other.Keys...),
		Identities:  append(append([]Identity{}, p.Identities...), other.Identities...),
		TrustedRoot: p.TrustedRoot,
	}
	if len(other.TrustedRoot) > 0 {
		out.TrustedRoot = other.TrustedRoot
	}
	return out
}

// Result is the answer for one digest under one policy.
type Result struct {
	// Verified is true when a signature matched an anchor.
	Verified bool
	// Reason is ReasonVerified or why not.
	Reason string
	// Message is for people.
	Message string
	// Signer names who signed: "key <fingerprint>" or "<subject> (<issuer>)".
	Signer string
}
