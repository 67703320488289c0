package state

import (
	"reflect"
	"sort"
	"strings"
)

// maxDiffFields bounds the fields a report names for one object.
const maxDiffFields = 8

// DiffFields names the fields (dotted paths, lists as one field) in which
// two cleaned manifests differ, sorted; empty when they are identical.
func DiffFields(live, exported map[string]any) []string {
	var out []string
	diffInto(&out, "", live, exported)
	sort.Strings(out)
	return out
}

func diffInto(out *[]string, path string, a, b any) {
	ma, aok := a.(map[string]any)
	mb, bok := b.(map[string]any)
	// A map on one side only (labels added where the export had none)
	// names the keys inside it, not the whole map.
	if aok && b == nil {
		mb, bok = map[string]any{}, true
	}
	if bok && a == nil {
		ma, aok = map[string]any{}, true
	}
	if !aok || !bok {
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, path)
		}
		return
	}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	for k := range keys {
		p := k
		if path != "" {
			p = path + "." + k
		}
		diffInto(out, p, ma[k], mb[k])
	}
}

// differsDetail is the import report's words for an existing object.
func differsDetail(fields []string) string {
	if len(fields) == 0 {
		return "exists, identical"
	}
	shown := fields
	more := ""
	if len(shown) > maxDiffFields {
		shown, more = shown[:maxDiffFields], ", ..."
	}
	return "exists, differs from the export in " + strings.Join(shown, ", ") + more + ": left unchanged"
}
