package writeback

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Per-namespace defaults: a platform team names the GitOps repository of a
// namespace once, in the ConfigMap DefaultsConfigMap of that namespace
// under the key DefaultsKey, and service teams' CVs set only their targets:
//
//	apiVersion: v1
//	kind: ConfigMap
//	metadata: {name: cvmanager-defaults, namespace: prod}
//	data:
//	  writeBack: |
//	    url: https://git.example.com/team/deploy.git
//	    branch: main
//	    secretRef: {name: deploy-repo, tokenKey: token}
//
// The defaults are the repository as a unit (URL, branch, credentials): a
// CV that names no URL takes the default URL, and the default branch and
// secretRef unless it sets its own. A CV that names its own URL takes
// nothing, so the namespace's credentials never go to a repository the
// defaults do not name. The CV's author must still be allowed to read the
// Secret (the access review of every write-back), so the defaults lend no
// right the author does not have.
const (
	DefaultsConfigMap = "cvmanager-defaults"
	DefaultsKey       = "writeBack"
)

// Defaults is the value of DefaultsKey: a namespace's write-back repository.
type Defaults struct {
	// URL of the repository, as spec.writeBack.url.
	URL string `json:"url"`
	// Branch, as spec.writeBack.branch (empty: main).
	Branch string `json:"branch,omitempty"`
	// SecretRef names a Secret in the namespace, as spec.writeBack.secretRef.
	SecretRef *cvv1.GitSecretRef `json:"secretRef,omitempty"`
}

// The checks the CRD's CEL rules make on spec.writeBack, for the defaults,
// which no admission rule sees.
var (
	repoURL       = regexp.MustCompile(`^(https?://[^/@ ]+/[^ ]+|ssh://[^/ ]+/[^ ]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^ ]+)$`)
	embeddedCreds = regexp.MustCompile(`^https?://[^/]*@`)
	branchName    = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
)

// ParseDefaults reads a DefaultsKey value (YAML or JSON, unknown fields
// refused so a typo is not silently ignored) and checks it as admission
// checks spec.writeBack. Errors name the field, never a value that could
// be a credential.
func ParseDefaults(value string) (Defaults, error) {
	var d Defaults
	if err := yaml.UnmarshalStrict([]byte(value), &d); err != nil {
		return Defaults{}, fmt.Errorf("ConfigMap %s key %s: %v", DefaultsConfigMap, DefaultsKey, err)
	}
	if err := d.validate(); err != nil {
		return Defaults{}, fmt.Errorf("ConfigMap %s key %s: %w", DefaultsConfigMap, DefaultsKey, err)
	}
	return d, nil
}

// validate checks the defaults alone: a URL, a branch name git accepts,
// and the credential keys the URL's scheme needs.
func (d Defaults) validate() error {
	switch {
	case d.URL == "":
		return errors.New("url is required")
	case embeddedCreds.MatchString(d.URL):
		return errors.New("url must not embed credentials; put them in the Secret named by secretRef")
	case !repoURL.MatchString(d.URL):
		return errors.New("url must be an https://, http://, ssh:// or user@host:path repository URL")
	case d.Branch != "" && !validBranch(d.Branch):
		return errors.New("branch must be a valid git branch name")
	case d.SecretRef != nil && d.SecretRef.Name == "":
		return errors.New("secretRef.name is required")
	}
	return checkCredentialKeys(d.URL, d.SecretRef)
}

// validBranch is the CRD's rule for spec.writeBack.branch.
func validBranch(b string) bool {
	return branchName.MatchString(b) && !strings.HasPrefix(b, "/") && !strings.HasSuffix(b, "/") &&
		!strings.Contains(b, "..") && !strings.HasSuffix(b, ".lock")
}

// checkCredentialKeys is the CRD's rules on secretRef for the URL's scheme:
// HTTPS takes a token or a user and password, SSH a key and known_hosts.
func checkCredentialKeys(url string, ref *cvv1.GitSecretRef) error {
	https := strings.HasPrefix(url, "http")
	switch {
	case ref != nil && ref.PasswordKey != "" && ref.UsernameKey == "":
		return errors.New("secretRef.passwordKey needs secretRef.usernameKey")
	case https && ref != nil && (ref.IdentityKey != "" || ref.KnownHostsKey != ""):
		return errors.New("an https repository takes token or username/password keys, not identityKey/knownHostsKey")
	case !https && (ref == nil || ref.IdentityKey == "" || ref.KnownHostsKey == ""):
		return errors.New("an ssh repository needs secretRef with identityKey and knownHostsKey")
	}
	return nil
}

// Effective is the write-back spec a CV's write uses: spec itself when it
// names a URL, else spec with the namespace's defaults (nil: none). A spec
// without a URL and no defaults, or whose own credential keys do not fit
// the default URL, is an error the CV's status reports.
func Effective(spec cvv1.WriteBackSpec, d *Defaults) (cvv1.WriteBackSpec, error) {
	if spec.URL != "" {
		return spec, nil
	}
	if d == nil {
		return spec, fmt.Errorf("spec.writeBack.url is unset and the namespace has no ConfigMap %s with key %s to take it from", DefaultsConfigMap, DefaultsKey)
	}
	out := *spec.DeepCopy()
	out.URL = d.URL
	if out.Branch == "" {
		out.Branch = d.Branch
	}
	if out.SecretRef == nil && d.SecretRef != nil {
		out.SecretRef = d.SecretRef.DeepCopy()
	}
	if err := checkCredentialKeys(out.URL, out.SecretRef); err != nil {
		return spec, fmt.Errorf("spec.writeBack with the url of ConfigMap %s: %w", DefaultsConfigMap, err)
	}
	return out, nil
}
