package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Local is a Backend in a directory of the local file system (or a mounted
// volume). Writes go to a temporary file renamed into place, so readers
// never see a partial object.
type Local struct {
	dir string
}

// NewLocal returns a Backend rooted at dir; dir is created on first write.
func NewLocal(dir string) (*Local, error) {
	if strings.TrimSpace(dir) == "" {
		return nil, errors.New("local state path is empty: pass --path <directory>")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Local{dir: abs}, nil
}

// String implements Backend.
func (l *Local) String() string { return "local:" + l.dir }

// file maps a key to a path inside the directory, refusing keys that would
// escape it.
func (l *Local) file(key string) (string, error) {
	clean := path.Clean("/" + key)
	if clean == "/" || strings.Contains(key, "\\") {
		return "", fmt.Errorf("invalid state key %q", key)
	}
	return filepath.Join(l.dir, filepath.FromSlash(clean[1:])), nil
}

// Put implements Backend.
func (l *Local) Put(_ context.Context, key string, data []byte) (string, error) {
	name, err := l.file(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return "", nil
}

// Get implements Backend; local files have no versions.
func (l *Local) Get(_ context.Context, key, _ string) ([]byte, error) {
	name, err := l.file(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return data, err
}

// List implements Backend.
func (l *Local) List(_ context.Context, prefix string) ([]ObjectInfo, error) {
	var out []ObjectInfo
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == l.dir {
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return err
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, ObjectInfo{Key: key, Size: info.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// Delete implements Backend.
func (l *Local) Delete(_ context.Context, keys []string) error {
	var errs []error
	for _, key := range keys {
		name, err := l.file(key)
		if err == nil {
			err = os.Remove(name)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Clear implements Backend: it removes the directory's state objects and
// the directories they leave empty, but never a file it did not write.
func (l *Local) Clear(ctx context.Context) error {
	objects, err := l.List(ctx, "")
	if err != nil {
		return err
	}
	var keys []string
	for _, o := range objects {
		if o.Key == ManifestKey || strings.HasPrefix(o.Key, CVPrefix) {
			keys = append(keys, o.Key)
		}
	}
	if err := l.Delete(ctx, keys); err != nil {
		return err
	}
	return removeEmptyDirs(filepath.Join(l.dir, filepath.FromSlash(strings.TrimSuffix(CVPrefix, "/"))))
}

// removeEmptyDirs removes dir's empty subdirectories, deepest first, then
// dir itself when empty.
func removeEmptyDirs(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeEmptyDirs(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if rest, err := os.ReadDir(dir); err == nil && len(rest) == 0 {
		return os.Remove(dir)
	}
	return nil
}
