package verify_test

import (
	"testing"

	"cvmanager.dev/cvmanager/pkg/verify"
)

// FuzzParseSignature feeds arbitrary bytes to the parsers this package owns
// on the signature path: the .sig manifest, the simple-signing payload and
// the Sigstore bundle. None may panic, and a payload that parses names a
// sha256 digest.
func FuzzParseSignature(f *testing.F) {
	f.Add([]byte(`{"critical":{"identity":{"docker-reference":"reg.example/app"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":10,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","annotations":{"dev.cosignproject.cosign/signature":"AAAA"}}]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"x"}},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _ = verify.ParseSignatureManifest(body)
		_, _ = verify.ParseBundle(body)
		digest, err := verify.ParsePayload(body)
		if err == nil && len(digest) != len("sha256:")+64 {
			t.Errorf("payload parsed to digest %q", digest)
		}
	})
}
