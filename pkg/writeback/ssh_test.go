package writeback

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// sshGitServer serves the repositories of a gitServer over SSH on
// 127.0.0.1: it accepts one client key and runs git-upload-pack or
// git-receive-pack for exec requests, as a forge's SSH endpoint does.
type sshGitServer struct {
	addr       string
	hostKey    ssh.PublicKey
	clientPriv []byte // OpenSSH PEM of the accepted client key
}

func newSSHGitServer(t *testing.T, s *gitServer) *sshGitServer {
	t.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientPub, clientPriv, _ := ed25519.GenerateKey(rand.Reader)
	allowed, _ := ssh.NewPublicKey(clientPub)
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), allowed.Marshal()) {
			return nil, nil
		}
		return nil, fmt.Errorf("unknown key")
	}}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serveSSH(conn, cfg, s.root) }()
		}
	}()
	return &sshGitServer{addr: ln.Addr().String(), hostKey: hostSigner.PublicKey(), clientPriv: pem.EncodeToMemory(block)}
}

func serveSSH(conn net.Conn, cfg *ssh.ServerConfig, root string) {
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		conn.Close()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, creqs, root)
	}
}

// serveSession runs the exec'd git service with the repository path
// resolved under root.
func serveSession(ch ssh.Channel, reqs <-chan *ssh.Request, root string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if ssh.Unmarshal(req.Payload, &payload) != nil {
			_ = req.Reply(false, nil)
			return
		}
		service, arg, _ := strings.Cut(payload.Command, " ")
		if service != "git-upload-pack" && service != "git-receive-pack" {
			_ = req.Reply(false, nil)
			return
		}
		repo := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'\"")))
		_ = req.Reply(true, nil)
		cmd := exec.Command(service, repo)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
		code := 0
		if err := cmd.Run(); err != nil {
			code = 1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		status := make([]byte, 4)
		binary.BigEndian.PutUint32(status, uint32(code))
		_, _ = ch.SendRequest("exit-status", false, status)
		return
	}
}

// TestSSHWriteBack writes over SSH with a key and known_hosts; a host key
// that does not match known_hosts is refused.
func TestSSHWriteBack(t *testing.T) {
	s := newGitServer(t)
	s.newRepo("team/app", map[string]string{"charts/web/values.yaml": helmValues})
	srv := newSSHGitServer(t, s)
	host, port, _ := net.SplitHostPort(srv.addr)
	url := fmt.Sprintf("ssh://git@%s:%s/team/app.git", host, port)
	knownHosts := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(srv.hostKey))

	c := newCollector()
	w := newTestWriter(t, c, Config{})
	req := request(s, url, "prod/web", "r1", 1, helmTarget)
	req.Credentials = Credentials{SSHKey: srv.clientPriv, KnownHosts: []byte(knownHosts)}
	w.Submit(req)
	if st := c.wait(t, "prod/web", 1); st.State != cvv1.WriteBackWritten {
		t.Fatalf("status = %+v", st)
	}
	if got := s.show("team/app", "main", "charts/web/values.yaml"); !strings.Contains(got, digest(1)) {
		t.Fatalf("values.yaml:\n%s", got)
	}

	// Another host key under that name: refused, and the reason says so
	// without the private key.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)
	req.RolloutID = "r2"
	req.Digest = digest(2)
	req.Credentials.KnownHosts = []byte(fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(other.PublicKey())))
	w.Submit(req)
	st := c.wait(t, "prod/web", 2)
	if st.State != cvv1.WriteBackFailed || !strings.Contains(st.Reason, "ssh://"+srv.addr+"/team/app.git") || !strings.Contains(st.Reason, "host key does not match") || strings.Contains(st.Reason, "PRIVATE KEY") {
		t.Fatalf("status = %+v, want Failed on the host key", st)
	}
	t.Logf("reason: %s", st.Reason)
}
