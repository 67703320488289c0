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

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func freePorts() (ports, error) {
	var p [3]int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := range p {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, err
		}
		listeners = append(listeners, l)
		p[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports{etcdClient: p[0], etcdPeer: p[1], apiserver: p[2]}, nil
}

// writeCredentials creates the service-account signing key and the static
// token file with the admin user.
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
	_, err := c.launch("etcd", c.minimalEnv(),
		"--name=default", "--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	return c.waitHTTP(ctx, "etcd", client+"/health", nil, 30*time.Second)
}

func (c *ControlPlane) startAPIServer(ctx context.Context) error {
	d := c.dir
	_, err := c.launch("kube-apiserver", c.minimalEnv(),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.ports.etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", c.ports.apiserver),
		"--cert-dir="+filepath.Join(d, "certs"),
		"--service-account-key-file="+filepath.Join(d, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(d, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--token-auth-file="+filepath.Join(d, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--allow-privileged=true")
	if err != nil {
		return err
	}
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // only to poll /readyz before the CA file exists
	header := http.Header{"Authorization": {"Bearer " + c.token}}
	return c.waitHTTPWith(ctx, insecure, "kube-apiserver", c.serverURL()+"/readyz", header, 60*time.Second)
}

func (c *ControlPlane) serverURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(c.ports.apiserver)
}

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

// WriteKubeconfig writes cfg (token or client-cert based) as a kubeconfig
// file, so a subprocess such as `cvmanager run` can use it.
func (c *ControlPlane) WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: c.caFile()}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "user"}
	kc.CurrentContext = "local"
	return clientcmd.WriteToFile(*kc, path)
}

func (c *ControlPlane) startControllerManager() error {
	_, err := c.launch("kube-controller-manager", c.minimalEnv(),
		"--kubeconfig="+c.KubeconfigPath(), "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--controllers=*,-serviceaccount-token", "--root-ca-file="+c.caFile(),
		"--service-account-private-key-file="+filepath.Join(c.dir, "sa.key"),
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10")
	return err
}

func (c *ControlPlane) startScheduler() error {
	_, err := c.launch("kube-scheduler", c.minimalEnv(),
		"--kubeconfig="+c.KubeconfigPath(), "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0")
	return err
}

func (c *ControlPlane) waitHTTP(ctx context.Context, name, url string, header http.Header, limit time.Duration) error {
	return c.waitHTTPWith(ctx, http.DefaultClient, name, url, header, limit)
}

func (c *ControlPlane) waitHTTPWith(ctx context.Context, client *http.Client, name, url string, header http.Header, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if cmd := c.procs[name]; cmd != nil && cmd.ProcessState != nil {
			return fmt.Errorf("%s exited:\n%s", name, c.logTail(name))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready after %s (last error %v):\n%s", name, limit, err, c.logTail(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stagesFile concatenates the kwok stages of hack/kwok into one config.
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
