package server

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// TLSFiles names the serving certificate and key (PEM). Both empty serves
// plain HTTP.
type TLSFiles struct {
	CertFile, KeyFile string
}

// Enabled reports whether TLS is configured, and refuses half a pair.
func (f TLSFiles) Enabled() (bool, error) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return false, fmt.Errorf("TLS needs both --tls-cert-file and --tls-private-key-file")
	}
	return f.CertFile != "", nil
}

// reloadingCertificate serves the key pair in its files and loads it again
// when either file changes, so a certificate renewed in a mounted Secret
// (cert-manager rotates them) is served without a restart. A renewal that
// fails to load keeps the previous certificate and is logged.
type reloadingCertificate struct {
	files TLSFiles

	mu               sync.Mutex
	cert             *tls.Certificate
	certMod, keyMod  time.Time
	lastFailedReload time.Time
}

func newReloadingCertificate(files TLSFiles) (*reloadingCertificate, error) {
	c := &reloadingCertificate{files: files}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is the tls.Config hook: one stat per file per handshake.
func (c *reloadingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed() {
		if err := c.reload(); err != nil && c.lastFailedReload.Before(time.Now().Add(-time.Minute)) {
			c.lastFailedReload = time.Now()
			klog.ErrorS(err, "Keeping the previous serving certificate")
		}
	}
	return c.cert, nil
}

func (c *reloadingCertificate) changed() bool {
	certMod, keyMod := modTime(c.files.CertFile), modTime(c.files.KeyFile)
	return !certMod.Equal(c.certMod) || !keyMod.Equal(c.keyMod)
}

func (c *reloadingCertificate) reload() error {
	certMod, keyMod := modTime(c.files.CertFile), modTime(c.files.KeyFile)
	cert, err := tls.LoadX509KeyPair(c.files.CertFile, c.files.KeyFile)
	if err != nil {
		return fmt.Errorf("loading the serving certificate: %w", err)
	}
	c.cert, c.certMod, c.keyMod = &cert, certMod, keyMod
	return nil
}

// modTime follows symlinks: a Secret volume swaps its ..data link on update.
func modTime(path string) time.Time {
	info, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return info.ModTime()
}
