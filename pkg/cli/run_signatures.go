package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/utils/clock"

	"cvmanager.dev/cvmanager/pkg/controller"
	"cvmanager.dev/cvmanager/pkg/registry"
	"cvmanager.dev/cvmanager/pkg/verify"
)

// signatureFlags are the controller-wide signature requirement of `run`: a
// platform team requires signed images everywhere; CVs may add anchors
// (spec.policy.verify) but not switch the requirement off.
type signatureFlags struct {
	require     bool
	keys        []string
	trustedRoot string
	identities  []string
}

func (s *signatureFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&s.require, "require-signatures", false,
		"refuse to deploy any image without a valid signature, for every CV (a CV's spec.policy.verify adds anchors; its Audit mode cannot weaken this)")
	f.StringArrayVar(&s.keys, "signature-key", nil, "PEM public key file (cosign.pub) trusted for every CV (repeatable)")
	f.StringVar(&s.trustedRoot, "signature-trusted-root", "", "Sigstore trusted_root.json for keyless signatures, used when a CV names none")
	f.StringArrayVar(&s.identities, "signature-identity", nil,
		"ISSUER=SUBJECT_REGEXP: keyless signer trusted for every CV, e.g. https://token.actions.githubusercontent.com=https://github.com/acme/.* (repeatable)")
}

// options reads the files the flags name and builds the verifier over the
// registry layer's reader.
func (s *signatureFlags) options(reader registry.ArtifactReader) (controller.SignatureOptions, error) {
	var p verify.Policy
	for _, file := range s.keys {
		pem, err := os.ReadFile(file)
		if err != nil {
			return controller.SignatureOptions{}, fmt.Errorf("--signature-key: %w", err)
		}
		p.Keys = append(p.Keys, pem)
	}
	if s.trustedRoot != "" {
		body, err := os.ReadFile(s.trustedRoot)
		if err != nil {
			return controller.SignatureOptions{}, fmt.Errorf("--signature-trusted-root: %w", err)
		}
		p.TrustedRoot = body
	}
	for _, id := range s.identities {
		issuer, subject, ok := strings.Cut(id, "=")
		if !ok || issuer == "" || subject == "" {
			return controller.SignatureOptions{}, fmt.Errorf("--signature-identity %q: want ISSUER=SUBJECT_REGEXP", id)
		}
		p.Identities = append(p.Identities, verify.Identity{Issuer: issuer, SubjectRegExp: subject})
	}
	if s.require && p.Empty() {
		return controller.SignatureOptions{}, fmt.Errorf("--require-signatures needs --signature-key or --signature-identity")
	}
	if err := verify.Compile(p); err != nil {
		return controller.SignatureOptions{}, fmt.Errorf("signature flags: %w", err)
	}
	return controller.SignatureOptions{Verifier: verify.New(reader, clock.RealClock{}), Require: s.require, Default: p}, nil
}
