package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// repoRoot is found from this file's path, so the harness works from any
// package's test directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// freePorts picks three free loopback ports, holding all listeners until
// every port is chosen so the kernel does not hand out one twice.
func freePorts() (ports, error) {
	var p [3]int
	for i := range p {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, err
		}
		defer l.Close()
		p[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports{etcdClient: p[0], etcdPeer: p[1], apiserver: p[2]}, nil
}

// writeCredentials creates the service-account signing key pair (Go crypto,
// no openssl needed) and the static token file with the admin user.
func (c *ControlPlane) writeCredentials() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	tokens := fmt.Sprintf("%s,admin,admin-uid,system:masters\n", c.token)
	for name, data := range map[string][]byte{"sa.key": keyPEM, "sa.pub": pubPEM, "tokens.csv": []byte(tokens)} {
		if err := os.WriteFile(filepath.Join(c.dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *ControlPlane) startEtcd(ctx context.Context) error {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.ports.etcdClient)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.ports.etcdPeer)
	_, err := c.launch("etcd",
		"--name=default", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	return c.waitHTTP(ctx, "etcd", http.DefaultClient, client+"/health", nil, 30*time.Second)
}

// startAPIServer starts kube-apiserver and waits for /readyz. It is also
// how RestartAPIServer brings it back: same port, certificates and etcd.
func (c *ControlPlane) startAPIServer(ctx context.Context) error {
	d := c.dir
	args := []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.ports.etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.ports.apiserver),
		"--cert-dir=" + filepath.Join(d, "certs"),
		"--service-account-key-file=" + filepath.Join(d, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(d, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--token-auth-file=" + filepath.Join(d, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--allow-privileged=true"}
	_, err := c.launch("kube-apiserver", append(args, c.opts.APIServerFlags...)...)
	if err != nil {
		return err
	}
	// Skipping verification only to poll /readyz on loopback: the CA file
	// (the self-signed serving certificate) may not exist yet.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	header := http.Header{"Authorization": {"Bearer " + c.token}}
	return c.waitHTTP(ctx, "kube-apiserver", insecure, c.serverURL()+"/readyz", header, 60*time.Second)
}

func (c *ControlPlane) serverURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(c.ports.apiserver)
}

// caFile is the apiserver's self-signed serving certificate, which is also
// the CA clients verify it with.
func (c *ControlPlane) caFile() string { return filepath.Join(c.dir, "certs", "apiserver.crt") }

func (c *ControlPlane) writeAdminKubeconfig() error {
	c.admin = &rest.Config{
		Host:            c.serverURL(),
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.caFile()},
		QPS:             100, Burst: 200,
	}
	return c.WriteKubeconfig(c.admin, c.KubeconfigPath())
}

// WriteKubeconfig writes cfg (token or client-certificate based) as a
// kubeconfig file, so a subprocess such as `cvmanager run` can run with
// exactly that identity.
func (c *ControlPlane) WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthority:     cfg.CAFile,
		CertificateAuthorityData: cfg.CAData,
		InsecureSkipTLSVerify:    cfg.Insecure,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		Token: cfg.BearerToken, TokenFile: cfg.BearerTokenFile,
		ClientCertificate: cfg.CertFile, ClientCertificateData: cfg.CertData,
		ClientKey: cfg.KeyFile, ClientKeyData: cfg.KeyData,
	}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "user"}
	kc.CurrentContext = "local"
	return clientcmd.WriteToFile(*kc, path)
}

// startControllerManager runs every default controller (Deployment,
// ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, garbage collector...)
// except the legacy token controller, which TokenRequest makes unnecessary.
func (c *ControlPlane) startControllerManager() error {
	_, err := c.launch("kube-controller-manager",
		"--kubeconfig="+c.KubeconfigPath(), "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--controllers=*,-serviceaccount-token", "--root-ca-file="+c.caFile(),
		"--service-account-private-key-file="+filepath.Join(c.dir, "sa.key"),
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10")
	return err
}

// startScheduler is needed because kwok does not bind pods to nodes.
func (c *ControlPlane) startScheduler() error {
	_, err := c.launch("kube-scheduler",
		"--kubeconfig="+c.KubeconfigPath(), "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0")
	return err
}

// waitHTTP polls url until it answers 200, failing early (with the log
// tail) when the component exits and at the latest after limit.
func (c *ControlPlane) waitHTTP(ctx context.Context, name string, client *http.Client, url string, header http.Header, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var lastErr error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header = header.Clone()
		resp, err := client.Do(req)
		if lastErr = err; err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("%s: %s", url, resp.Status)
		}
		if c.exited(name) {
			return fmt.Errorf("%s exited while starting:\n%s", name, c.logTail(name))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last error: %v):\n%s", name, limit, lastErr, c.logTail(name))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *ControlPlane) exited(name string) bool {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	return p != nil && p.exited()
}

// stagesFile concatenates the kwok stages of hack/kwok (kwok's own stages
// plus cvmanager's markers) into the one config file kwok reads.
func (c *ControlPlane) stagesFile() (string, error) {
	files, err := filepath.Glob(filepath.Join(repoRoot(), "hack", "kwok", "*.yaml"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no kwok stages in hack/kwok: %v", err)
	}
	var docs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		docs = append(docs, strings.TrimSpace(string(data)))
	}
	path := filepath.Join(c.dir, "kwok-stages.yaml")
	return path, os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")+"\n"), 0o600)
}
