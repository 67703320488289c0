package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerConfigJSON is the part of a .dockerconfigjson this package reads.
type dockerConfigJSON struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// authenticator picks the credentials for reg (see Auth) and a key that
// identifies them and the registry, so clients holding tokens are shared
// only between callers with the same credentials for the same registry.
func (a Auth) authenticator(reg name.Registry, cloud *cloudKeychain) (authn.Authenticator, string, error) {
	auth, key, err := a.pick(reg)
	if err == nil && auth == authn.Anonymous {
		p, explicit := a.Provider.effective(reg), a.Provider != ProviderAuto
		if c := cloud.authenticator(p, explicit, reg); c != nil {
			// explicit and host-chosen logins differ (only the latter falls
			// back to anonymous), so they never share a client.
			auth, key = c, fmt.Sprintf("cloud-%s-explicit=%t", p, explicit)
		}
	}
	return auth, reg.Scheme() + "://" + reg.RegistryStr() + "|" + key, err
}

// pick chooses static credentials; authn.Anonymous when none apply, which
// leaves the way to the provider's cloud identity.
func (a Auth) pick(reg name.Registry) (authn.Authenticator, string, error) {
	if a.Username != "" {
		return &authn.Basic{Username: a.Username, Password: a.Password}, credentialKey("basic", a.Username, a.Password), nil
	}
	if cfg, ok := fromPullSecrets(reg.RegistryStr(), a.PullSecrets); ok {
		raw, _ := json.Marshal(cfg)
		return authn.FromConfig(cfg), credentialKey("secret", string(raw)), nil
	}
	if a.DockerConfig {
		auth, err := authn.DefaultKeychain.Resolve(reg)
		if err != nil || auth != authn.Anonymous {
			return auth, "docker-config", err
		}
	}
	return authn.Anonymous, "anonymous", nil
}

// fromPullSecrets finds the entry for host in .dockerconfigjson payloads,
// under the spellings docker login writes (Docker Hub's legacy URL too).
func fromPullSecrets(host string, secrets [][]byte) (authn.AuthConfig, bool) {
	keys := []string{host, "https://" + host, "http://" + host, "https://" + host + "/v1/", "https://" + host + "/v2/"}
	if host == name.DefaultRegistry {
		keys = append(keys, "docker.io", "https://index.docker.io/v1/", "registry-1.docker.io")
	}
	for _, data := range secrets {
		var cfg dockerConfigJSON
		if json.Unmarshal(data, &cfg) != nil {
			continue
		}
		for _, key := range keys {
			if a, ok := cfg.Auths[key]; ok {
				return a, true
			}
		}
	}
	return authn.AuthConfig{}, false
}

// credentialKey hashes secrets so they never sit in map keys in the clear.
func credentialKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
