package writeback

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"text/template"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Request asks for one rollout's image to be written back. The controller
// builds it in its apply phase from the CV (after a rollout finished
// Success, or a rollback restored a digest) and the Secret that
// spec.writeBack.secretRef names.
type Request struct {
	// Key is the CV's queue key, <namespace>/<name>; results are reported
	// under it.
	Key string
	// RolloutID identifies the rollout; it becomes the commit trailer
	// "Cvmanager-Rollout: <id>" that makes a replayed request write nothing.
	// It must be unique per rollout across CVs (the controller's IDs hash
	// the CV's UID).
	RolloutID string
	// ImageRepo, Version and Digest are the image that passed.
	ImageRepo string
	Version   string
	Digest    string
	// FromVersion is what ran before, for the message.
	FromVersion string
	// RolledBack says the image is a restored one (a rollback).
	RolledBack bool
	// Provenance of the image (revision, source, CI link), for the message.
	Provenance cvv1.Provenance
	// Signer who signed the image, when verified.
	Signer string
	// Spec is the CV's spec.writeBack.
	Spec cvv1.WriteBackSpec
	// Credentials resolved from spec.writeBack.secretRef.
	Credentials Credentials
	// Attempts is how many earlier attempts at this rollout's write failed
	// (status.writeBack.attempts when its rolloutID matches); a Failed
	// report carries Attempts+1, for Backoff.
	Attempts int32
}

// Credentials are the resolved contents of spec.writeBack.secretRef. They
// are used for git and the forge API only, and never appear in a reason,
// a log line or a commit.
type Credentials struct {
	// Token is sent as the HTTPS password (user Username, or "git") and as
	// the forge API token in PullRequest mode.
	Token string
	// Username and Password are HTTPS basic auth.
	Username string
	Password string
	// SSHKey is a private key (OpenSSH or PEM); KnownHosts are known_hosts
	// lines that the server's host key must match.
	SSHKey     []byte
	KnownHosts []byte
	// CABundle holds PEM CA certificates trusted for HTTPS besides the
	// system roots (a private CA).
	CABundle []byte
}

// CredentialsFromSecret picks the keys ref names out of a Secret's data.
// A key that ref names but the Secret lacks is an error naming the key
// (never its value).
func CredentialsFromSecret(ref *cvv1.GitSecretRef, data map[string][]byte) (Credentials, error) {
	var c Credentials
	if ref == nil {
		return c, nil
	}
	get := func(key string, dst *string) error {
		if key == "" {
			return nil
		}
		v, ok := data[key]
		if !ok {
			return fmt.Errorf("secret %s has no key %q", ref.Name, key)
		}
		*dst = strings.TrimRight(string(v), "\r\n")
		return nil
	}
	var key, hosts, ca string
	for _, e := range []error{get(ref.TokenKey, &c.Token), get(ref.UsernameKey, &c.Username), get(ref.PasswordKey, &c.Password),
		get(ref.IdentityKey, &key), get(ref.KnownHostsKey, &hosts), get(ref.CAKey, &ca)} {
		if e != nil {
			return Credentials{}, e
		}
	}
	if key != "" {
		c.SSHKey = []byte(key + "\n")
	}
	if hosts != "" {
		c.KnownHosts = []byte(hosts + "\n")
	}
	if ca != "" {
		c.CABundle = []byte(ca + "\n")
	}
	return c, nil
}

// fingerprint tells credential sets apart without keeping them in a key.
func (c Credentials) fingerprint() string {
	h := sha256.New()
	for _, s := range [][]byte{[]byte(c.Token), []byte(c.Username), []byte(c.Password), c.SSHKey, c.KnownHosts, c.CABundle} {
		h.Write(s)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// scrub removes every credential from a message, in case a library quoted
// one (a URL with user info, an echoed header).
func (c Credentials) scrub(msg string) string {
	for _, s := range []string{c.Token, c.Password, string(bytes.TrimSpace(c.SSHKey))} {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

// Trailer is the commit trailer key carrying the rollout ID.
const Trailer = "Cvmanager-Rollout"

// DefaultMessageTemplate is used when spec.writeBack.messageTemplate is empty.
const DefaultMessageTemplate = `{{if .RolledBack}}Roll back{{else}}Deploy{{end}} {{.CV}} to {{.Version}}

{{.ImageRepo}}:{{.Version}}@{{.Digest}} passed its rollout{{if .RolledBack}} (restored after a failed rollout){{end}}.
{{- if .FromVersion}}
Previous version: {{.FromVersion}}{{end}}
{{- if .Provenance.Revision}}
Source revision: {{.Provenance.Revision}}{{end}}
{{- if .Provenance.Source}}
Source: {{.Provenance.Source}}{{end}}
{{- if .Provenance.CILink}}
CI: {{.Provenance.CILink}}{{end}}
{{- if .Signer}}
Signed by: {{.Signer}}{{end}}`

// messageData is what a message template sees.
type messageData struct {
	CV, Namespace, Name        string
	ImageRepo, Version, Digest string
	FromVersion                string
	RolledBack                 bool
	Signer, RolloutID          string
	Provenance                 cvv1.Provenance
}

// Message renders the request's commit message (without the trailer).
func (r Request) Message() (string, error) {
	text := r.Spec.MessageTemplate
	if text == "" {
		text = DefaultMessageTemplate
	}
	t, err := template.New("message").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("messageTemplate: %w", err)
	}
	ns, name, _ := strings.Cut(r.Key, "/")
	var b bytes.Buffer
	err = t.Execute(&b, messageData{CV: r.Key, Namespace: ns, Name: name, ImageRepo: r.ImageRepo, Version: r.Version,
		Digest: r.Digest, FromVersion: r.FromVersion, RolledBack: r.RolledBack, Signer: r.Signer, RolloutID: r.RolloutID, Provenance: r.Provenance})
	if err != nil {
		return "", fmt.Errorf("messageTemplate: %w", err)
	}
	msg := strings.TrimSpace(b.String())
	if msg == "" {
		return "", errors.New("messageTemplate renders an empty message")
	}
	return msg, nil
}

// trailerLine is the trailer that marks a commit as holding this rollout.
func (r Request) trailerLine() string { return Trailer + ": " + r.RolloutID }

func (r Request) image() Image { return Image{Repo: r.ImageRepo, Version: r.Version, Digest: r.Digest} }

// setterName is the default setter name, <namespace>:<name>.
func (r Request) setterName() string { return strings.Replace(r.Key, "/", ":", 1) }

// branch is the spec's branch or main.
func (r Request) branch() string {
	if r.Spec.Branch == "" {
		return "main"
	}
	return r.Spec.Branch
}

// prBranch is the branch a PullRequest-mode write pushes: cvmanager/<ns>-<name>.
func (r Request) prBranch() string {
	return "cvmanager/" + strings.Replace(r.Key, "/", "-", 1)
}

func (r Request) validate() error {
	switch {
	case r.Key == "" || !strings.Contains(r.Key, "/"):
		return errors.New("request key must be <namespace>/<name>")
	case r.RolloutID == "" || strings.ContainsAny(r.RolloutID, "\r\n"):
		return errors.New("request needs a one-line rollout ID")
	case r.ImageRepo == "" || r.Digest == "":
		return errors.New("request needs an image repository and digest")
	case r.Spec.URL == "":
		return errors.New("writeBack.url is empty")
	case len(r.Spec.Targets) == 0:
		return errors.New("writeBack.targets is empty")
	}
	return nil
}
