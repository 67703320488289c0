package writeback

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// kustomizeEdits sets newTag and digest (and newName when the entry's name
// is not the image repository) of the images: entry named
// target.ImageName (default img.Repo), adding the fields, the entry or the
// images: list when missing.
func kustomizeEdits(src []byte, docs []*yaml.Node, target cvv1.WriteBackTarget, img Image) ([]edit, error) {
	if len(docs) == 0 || len(docs[0].Content) == 0 || docs[0].Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a kustomization: the file holds no YAML mapping")
	}
	root := docs[0].Content[0]
	starts := lineStarts(src)
	name := target.ImageName
	if name == "" {
		name = img.Repo
	}
	fields := [][2]string{}
	if name != img.Repo {
		fields = append(fields, [2]string{"newName", img.Repo})
	}
	fields = append(fields, [2]string{"newTag", img.Version}, [2]string{"digest", img.Digest})

	imagesKey, images := mapGet(root, "images")
	if images == nil || (images.Kind == yaml.ScalarNode && images.Tag == "!!null") {
		entry := "- name: " + plainOrQuoted(name) + "\n"
		for _, f := range fields {
			entry += "  " + f[0] + ": " + plainOrQuoted(f[1]) + "\n"
		}
		if imagesKey != nil {
			// "images:" with nothing after it: the list goes below.
			return []edit{insertAfterLine(src, starts, imagesKey.Line, indentLines(entry, ""))}, nil
		}
		return []edit{insertAfterLine(src, starts, lastLine(root), "images:\n"+entry)}, nil
	}
	if images.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: images is not a list", images.Line)
	}
	for _, e := range images.Content {
		if _, n := mapGet(e, "name"); n != nil && n.Value == name {
			return setFields(src, starts, e, fields)
		}
	}
	if images.Style&yaml.FlowStyle != 0 || len(images.Content) == 0 {
		return nil, fmt.Errorf("line %d: the images list is in flow style ([...]); write it as a block list to let cvmanager add entries", images.Line)
	}
	// The new entry copies the first one's layout: the dash at the list's
	// column, its keys at the first entry's key column.
	first := images.Content[0]
	gap := max(1, first.Column-images.Column-1)
	keyIndent := strings.Repeat(" ", max(images.Column+1, first.Column)-1)
	entry := strings.Repeat(" ", images.Column-1) + "-" + strings.Repeat(" ", gap) + "name: " + plainOrQuoted(name) + "\n"
	for _, f := range fields {
		entry += keyIndent + f[0] + ": " + plainOrQuoted(f[1]) + "\n"
	}
	return []edit{insertAfterLine(src, starts, lastLine(images), entry)}, nil
}

func indentLines(text, indent string) string {
	lines := strings.SplitAfter(text, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(indent + l)
		}
	}
	return b.String()
}

// setFields sets each key of a block mapping to its value, appending the
// keys it lacks after its last line with the indentation of its keys.
func setFields(src []byte, starts []int, m *yaml.Node, fields [][2]string) ([]edit, error) {
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: expected a mapping", m.Line)
	}
	var edits []edit
	var missing []string
	for _, f := range fields {
		if _, v := mapGet(m, f[0]); v != nil {
			e, err := scalarEdit(src, starts, v, f[1])
			if err != nil {
				return nil, err
			}
			edits = append(edits, e)
			continue
		}
		missing = append(missing, f[0]+": "+plainOrQuoted(f[1])+"\n")
	}
	if len(missing) > 0 {
		if m.Style&yaml.FlowStyle != 0 {
			return nil, fmt.Errorf("line %d: cannot add %q to a flow mapping ({...}); write the field in git first", m.Line, strings.TrimSpace(missing[0]))
		}
		last := m.Content[len(m.Content)-1]
		if last.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil, fmt.Errorf("line %d: cannot add fields after a block scalar", last.Line)
		}
		indent := strings.Repeat(" ", m.Content[0].Column-1)
		edits = append(edits, insertAfterLine(src, starts, lastLine(m), indentLines(strings.Join(missing, ""), indent)))
	}
	return edits, nil
}

// yamlPathEdits sets the fields paths names in the first document that has
// them (a missing last key of a path is added to its mapping).
func yamlPathEdits(src []byte, docs []*yaml.Node, paths *cvv1.YAMLPaths, img Image) ([]edit, error) {
	if paths == nil {
		return nil, errors.New("a YAMLPath target needs yamlPaths")
	}
	want := [][2]string{{paths.Image, img.Ref()}, {paths.Name, img.Repo}, {paths.Tag, img.Version}, {paths.Digest, img.Digest}}
	starts := lineStarts(src)
	lastErr := errors.New("no YAML document in the file")
	for _, d := range docs {
		edits, err := docPathEdits(src, starts, d, want)
		if err == nil {
			return edits, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func docPathEdits(src []byte, starts []int, doc *yaml.Node, want [][2]string) ([]edit, error) {
	var edits []edit
	for _, w := range want {
		if w[0] == "" {
			continue
		}
		n, parent, key, err := lookup(doc, w[0])
		if err != nil {
			return nil, err
		}
		var es []edit
		if n == nil {
			es, err = setFields(src, starts, parent, [][2]string{{key, w[1]}})
		} else {
			var e edit
			e, err = scalarEdit(src, starts, n, w[1])
			es = []edit{e}
		}
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", w[0], err)
		}
		edits = append(edits, es...)
	}
	return mergeInsertions(edits), nil
}

// mergeInsertions joins insertions at one offset into one edit, in order,
// so adding tag and digest to one mapping inserts two lines.
func mergeInsertions(edits []edit) []edit {
	var out []edit
	for _, e := range edits {
		if e.start == e.end {
			merged := false
			for i := range out {
				if out[i].start == e.start && out[i].end == e.end {
					out[i].text += e.text
					merged = true
					break
				}
			}
			if merged {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

var segmentRE = regexp.MustCompile(`^([^\[\]]*)((\[[^\[\]]+\])*)$`)
var indexRE = regexp.MustCompile(`\[([^\[\]]+)\]`)

// lookup follows a dotted path (a.b[0].c, containers[name=app].image) from
// a document node to the node it names. When only the path's last key is
// missing, n is nil and parent and key say where it would go.
func lookup(doc *yaml.Node, path string) (n, parent *yaml.Node, key string, err error) {
	n = doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	segs := strings.Split(path, ".")
	walked := ""
	for si, seg := range segs {
		m := segmentRE.FindStringSubmatch(seg)
		if m == nil {
			return nil, nil, "", fmt.Errorf("bad path segment %q in %q", seg, path)
		}
		if m[1] != "" {
			_, v := mapGet(n, m[1])
			if v == nil {
				if si == len(segs)-1 && m[2] == "" && n.Kind == yaml.MappingNode {
					return nil, n, m[1], nil
				}
				return nil, nil, "", fmt.Errorf("path %q: %s%s not found", path, walked+prefix(walked), m[1])
			}
			n = v
			walked += prefix(walked) + m[1]
		}
		for _, idx := range indexRE.FindAllStringSubmatch(m[2], -1) {
			next, err := index(n, idx[1])
			if err != nil {
				return nil, nil, "", fmt.Errorf("path %q at %s[%s]: %w", path, walked, idx[1], err)
			}
			n = next
			walked += "[" + idx[1] + "]"
		}
	}
	if n.Kind == yaml.AliasNode {
		return nil, nil, "", fmt.Errorf("path %q names an alias (*%s); edit the anchor instead", path, n.Value)
	}
	return n, nil, "", nil
}

func prefix(walked string) string {
	if walked == "" {
		return ""
	}
	return "."
}

// index picks a list element by position or by key=value.
func index(n *yaml.Node, sel string) (*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errors.New("not a list")
	}
	if k, v, ok := strings.Cut(sel, "="); ok {
		for _, e := range n.Content {
			if _, val := mapGet(e, k); val != nil && val.Value == v {
				return e, nil
			}
		}
		return nil, errors.New("no element matches")
	}
	i, err := strconv.Atoi(sel)
	if err != nil || i < 0 || i >= len(n.Content) {
		return nil, errors.New("index out of range")
	}
	return n.Content[i], nil
}

// setterMarker matches a marker comment: # {"$cvmanager": "ns:name:tag"}
// or Flux's # {"$imagepolicy": "ns:policy:tag"}.
var setterMarker = regexp.MustCompile(`#\s*(\{\s*"\$(?:cvmanager|imagepolicy)"\s*:\s*"[^"]*"\s*\})\s*$`)

// setterEdits sets every value marked for setter: the whole reference, or
// with the :name, :tag or :digest suffix only that part.
func setterEdits(src []byte, docs []*yaml.Node, setter string, img Image) ([]edit, error) {
	if setter == "" {
		return nil, errors.New("no setter name")
	}
	byLine := map[int]*yaml.Node{}
	for _, d := range docs {
		collectValues(d, byLine)
	}
	starts := lineStarts(src)
	var edits []edit
	for i := range starts {
		end := len(src)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		line := strings.TrimRight(string(src[starts[i]:end]), "\r\n")
		m := setterMarker.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var marker map[string]string
		if err := json.Unmarshal([]byte(m[1]), &marker); err != nil {
			continue
		}
		name := marker["$cvmanager"] + marker["$imagepolicy"]
		value, ok := setterValue(name, setter, img)
		if !ok {
			continue
		}
		n := byLine[i+1]
		if n == nil {
			return nil, fmt.Errorf("line %d: the setter marker follows no scalar value", i+1)
		}
		e, err := scalarEdit(src, starts, n, value)
		if err != nil {
			return nil, err
		}
		edits = append(edits, e)
	}
	if len(edits) == 0 {
		return nil, fmt.Errorf("no marker for setter %q (# {\"$cvmanager\": %q})", setter, setter)
	}
	return edits, nil
}

// setterValue says what a marker named name sets, if it is for setter.
func setterValue(name, setter string, img Image) (string, bool) {
	switch name {
	case setter:
		return img.Ref(), true
	case setter + ":name":
		return img.Repo, true
	case setter + ":tag":
		return img.Version, true
	case setter + ":digest":
		return img.Digest, true
	}
	return "", false
}

// collectValues maps each line to the last scalar value (a mapping value or
// list item) starting on it.
func collectValues(n *yaml.Node, byLine map[int]*yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			v := n.Content[i+1]
			if v.Kind == yaml.ScalarNode {
				byLine[v.Line] = v
			} else {
				collectValues(v, byLine)
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode && n.Kind == yaml.SequenceNode {
				byLine[c.Line] = c
			} else {
				collectValues(c, byLine)
			}
		}
	}
}
