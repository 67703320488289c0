package trigger

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadKeysDir reads API keys from a mounted Secret: each data key is a file
// named after the API key's name holding the key; an optional
// "<name>.namespaces" file holds a comma-separated namespace scope. Mounting
// (rather than reading the Secret through the API) keeps keys out of the
// controller's RBAC and picks up rotation on restart.
func LoadKeysDir(dir string) ([]APIKey, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading trigger keys: %w", err)
	}
	var keys []APIKey
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".namespaces") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		key := APIKey{Name: name, Key: strings.TrimSpace(string(data))}
		if scope, err := os.ReadFile(filepath.Join(dir, name+".namespaces")); err == nil {
			for _, ns := range strings.Split(string(scope), ",") {
				if ns = strings.TrimSpace(ns); ns != "" {
					key.Namespaces = append(key.Namespaces, ns)
				}
			}
		}
		if len(key.Key) < 16 {
			return nil, fmt.Errorf("trigger key %q is shorter than 16 characters", name)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no trigger keys in %s", dir)
	}
	return keys, nil
}
