package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"cvmanager.dev/cvmanager/test/testcerts"
)

// TestServeTLSReloadsARenewedCertificate runs the real server on 127.0.0.1:
// HTTPS with the given key pair, plain HTTP refused, and a certificate
// replaced on disk served on the next connection without a restart.
func TestServeTLSReloadsARenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	first := testcerts.Write(t, dir, "first")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, NewMux(nil, Readiness{}), TLSFiles{first.CertFile, first.KeyFile}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	if got := servedCertificate(t, addr, first.Pool); got != "first" {
		t.Fatalf("served %q, want the first certificate", got)
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("plain HTTP answered 200 (%q) on a TLS port", body)
		}
	}

	second := testcerts.Write(t, dir, "second")
	later := time.Now().Add(time.Second) // a rename can keep a file's old mtime on coarse clocks
	for _, f := range []string{second.CertFile, second.KeyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := servedCertificate(t, addr, second.Pool); got != "second" {
		t.Fatalf("served %q after renewal, want the second certificate", got)
	}
}

func TestServeRefusesHalfATLSPair(t *testing.T) {
	err := Serve(context.Background(), freeAddr(t), http.NewServeMux(), TLSFiles{CertFile: "cert.pem"})
	if err == nil || !strings.Contains(err.Error(), "--tls-private-key-file") {
		t.Fatalf("Serve with a certificate and no key: %v", err)
	}
}

func TestServeRefusesAnUnreadableCertificate(t *testing.T) {
	err := Serve(context.Background(), freeAddr(t), http.NewServeMux(), TLSFiles{CertFile: "absent.pem", KeyFile: "absent.key"})
	if err == nil || !strings.Contains(err.Error(), "serving certificate") {
		t.Fatalf("Serve with missing files: %v", err)
	}
}

// servedCertificate GETs /healthz over a new connection trusting roots and
// returns the common name of the certificate the server presented.
func servedCertificate(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
	}}
	var lastErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz over TLS: %s", resp.Status)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	var unknown x509.UnknownAuthorityError
	if errors.As(lastErr, &unknown) {
		return unknown.Cert.Subject.CommonName
	}
	t.Fatalf("no TLS answer from %s: %v", addr, lastErr)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
