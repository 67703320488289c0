package multins

import (
	"errors"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
)

// indexers reads several disjoint caches (one per namespace) as one
// cache.Indexer. Every read concatenates the members' answers, which is
// exact because no object is in two members. It is read-only: the
// informers write their own members.
type indexers []cache.Indexer

var errReadOnly = errors.New("multins: a combined indexer is read-only")

func (x indexers) concat(f func(cache.Indexer) ([]any, error)) ([]any, error) {
	var out []any
	for _, i := range x {
		objs, err := f(i)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func (x indexers) strings(f func(cache.Indexer) ([]string, error)) ([]string, error) {
	var out []string
	for _, i := range x {
		keys, err := f(i)
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
	}
	return out, nil
}

func (x indexers) Add(any) error               { return errReadOnly }
func (x indexers) Update(any) error            { return errReadOnly }
func (x indexers) Delete(any) error            { return errReadOnly }
func (x indexers) Replace([]any, string) error { return errReadOnly }
func (x indexers) Resync() error               { return nil }

func (x indexers) List() []any {
	out, _ := x.concat(func(i cache.Indexer) ([]any, error) { return i.List(), nil })
	return out
}

func (x indexers) ListKeys() []string {
	out, _ := x.strings(func(i cache.Indexer) ([]string, error) { return i.ListKeys(), nil })
	return out
}

func (x indexers) Get(obj any) (any, bool, error) {
	for _, i := range x {
		if item, ok, err := i.Get(obj); ok || err != nil {
			return item, ok, err
		}
	}
	return nil, false, nil
}

func (x indexers) GetByKey(key string) (any, bool, error) {
	for _, i := range x {
		if item, ok, err := i.GetByKey(key); ok || err != nil {
			return item, ok, err
		}
	}
	return nil, false, nil
}

func (x indexers) Index(name string, obj any) ([]any, error) {
	return x.concat(func(i cache.Indexer) ([]any, error) { return i.Index(name, obj) })
}

func (x indexers) IndexKeys(name, value string) ([]string, error) {
	return x.strings(func(i cache.Indexer) ([]string, error) { return i.IndexKeys(name, value) })
}

func (x indexers) ListIndexFuncValues(name string) []string {
	values := sets.New[string]()
	for _, i := range x {
		values.Insert(i.ListIndexFuncValues(name)...)
	}
	return sets.List(values)
}

func (x indexers) ByIndex(name, value string) ([]any, error) {
	return x.concat(func(i cache.Indexer) ([]any, error) { return i.ByIndex(name, value) })
}

func (x indexers) GetIndexers() cache.Indexers {
	if len(x) == 0 {
		return cache.Indexers{}
	}
	return x[0].GetIndexers()
}

func (x indexers) AddIndexers(cache.Indexers) error { return errReadOnly }
