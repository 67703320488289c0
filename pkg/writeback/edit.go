package writeback

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	cvv1 "cvmanager.dev/cvmanager/pkg/apis/cvmanager/v1alpha1"
)

// Image is what a target is set to.
type Image struct {
	// Repo is the repository without tag or digest (spec.imageRepo).
	Repo string
	// Version is the version tag.
	Version string
	// Digest is sha256:….
	Digest string
}

// Ref is the whole pinned reference repo:version@digest.
func (i Image) Ref() string {
	ref := i.Repo
	if i.Version != "" {
		ref += ":" + i.Version
	}
	if i.Digest != "" {
		ref += "@" + i.Digest
	}
	return ref
}

// EditTarget returns src with target's fields set to img. Only the bytes of
// the targeted values change (and, where a Kustomize field or entry is
// missing, lines are inserted): the file is never re-marshalled, so
// comments, key order, quoting and indentation survive. setter is the
// default setter name for Setter targets (<namespace>:<name>).
//
// The result is checked before it is returned: it must parse, and editing
// it again must change nothing (the values sit where the edit put them).
// A layout the splice cannot handle (a multi-line value before an insert
// point, say) is an error asking for a one-time hand edit, never a broken
// file in git.
func EditTarget(src []byte, target cvv1.WriteBackTarget, img Image, setter string) ([]byte, error) {
	out, err := editOnce(src, target, img, setter)
	if err != nil {
		return nil, err
	}
	again, err := editOnce(out, target, img, setter)
	if err != nil || !bytes.Equal(again, out) {
		return nil, errors.New("the edit would not leave valid YAML with the new values in place (an unusual layout near the targeted fields); set the fields by hand once, later writes then only replace values")
	}
	return out, nil
}

func editOnce(src []byte, target cvv1.WriteBackTarget, img Image, setter string) ([]byte, error) {
	docs, err := parseDocs(src)
	if err != nil {
		return nil, err
	}
	var edits []edit
	switch target.Kind {
	case cvv1.TargetKustomize:
		edits, err = kustomizeEdits(src, docs, target, img)
	case cvv1.TargetYAMLPath:
		edits, err = yamlPathEdits(src, docs, target.YAMLPaths, img)
	case cvv1.TargetSetter:
		name := target.Setter
		if name == "" {
			name = setter
		}
		edits, err = setterEdits(src, docs, name, img)
	default:
		err = fmt.Errorf("unknown target kind %q", target.Kind)
	}
	if err != nil {
		return nil, err
	}
	return applyEdits(src, edits)
}

// parseDocs reads every document of a YAML stream as nodes; their line and
// column marks are positions in src.
func parseDocs(src []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse YAML: %w", err)
		}
		docs = append(docs, &n)
	}
}

// edit replaces src[start:end] with text (an insertion when start == end).
type edit struct {
	start, end int
	text       string
}

func applyEdits(src []byte, edits []edit) ([]byte, error) {
	if bytes.Contains(src, []byte("\r\n")) {
		// Lines added to a CRLF file end in CRLF too.
		for i := range edits {
			edits[i].text = strings.ReplaceAll(edits[i].text, "\n", "\r\n")
		}
	}
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	pos := 0
	for _, e := range edits {
		if e.start < pos {
			return nil, errors.New("two edits overlap (the same field targeted twice)")
		}
		out.Write(src[pos:e.start])
		out.WriteString(e.text)
		pos = e.end
	}
	out.Write(src[pos:])
	return out.Bytes(), nil
}

// lineStarts gives the byte offset of each line (index 0 is line 1).
func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, b := range src {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// offset turns a node's 1-based line and column into a byte offset. yaml.v3
// counts columns in runes.
func offset(src []byte, starts []int, line, col int) (int, error) {
	if line < 1 || line > len(starts) {
		return 0, fmt.Errorf("line %d out of range", line)
	}
	off := starts[line-1]
	for c := 1; c < col; c++ {
		if off >= len(src) || src[off] == '\n' {
			return 0, fmt.Errorf("column %d out of range on line %d", col, line)
		}
		_, size := utf8.DecodeRune(src[off:])
		off += size
	}
	return off, nil
}

// scalarEdit replaces the scalar node n with value, keeping its quoting
// style; a plain scalar whose new value would not read back as the same
// string (a number, true, a leading '*') is double-quoted instead.
func scalarEdit(src []byte, starts []int, n *yaml.Node, value string) (edit, error) {
	if n.Kind != yaml.ScalarNode {
		return edit{}, fmt.Errorf("line %d: expected a scalar value, found a %s", n.Line, kindName(n.Kind))
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return edit{}, fmt.Errorf("line %d: block scalars (| or >) are not edited; write the value on one line", n.Line)
	}
	start, err := offset(src, starts, n.Line, n.Column)
	if err != nil {
		return edit{}, err
	}
	if n.Value == "" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		// An empty value (key:): keep a space after the colon and before a
		// comment that follows.
		text := plainOrQuoted(value)
		if start > 0 && src[start-1] != ' ' && src[start-1] != '\t' {
			text = " " + text
		}
		if start < len(src) && src[start] == '#' {
			text += " "
		}
		return edit{start: start, end: start, text: text}, nil
	}
	end, err := scalarEnd(src, start, n)
	if err != nil {
		return edit{}, fmt.Errorf("line %d: %w", n.Line, err)
	}
	var text string
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		text = strconv.Quote(value)
	case n.Style&yaml.SingleQuotedStyle != 0:
		text = "'" + strings.ReplaceAll(value, "'", "''") + "'"
	default:
		text = plainOrQuoted(value)
	}
	return edit{start: start, end: end, text: text}, nil
}

// plainOrQuoted writes value plain when it reads back as the same string.
func plainOrQuoted(value string) string {
	if value == "" || strings.ContainsAny(value, "#\n\"'") || strings.TrimSpace(value) != value {
		return strconv.Quote(value)
	}
	var m map[string]any
	if yaml.Unmarshal([]byte("v: "+value), &m) == nil {
		if s, ok := m["v"].(string); ok && s == value {
			return value
		}
	}
	return strconv.Quote(value)
}

// scalarEnd finds where a one-line scalar starting at start ends. A plain
// scalar's text is its value (plain scalars have no escapes), so its end
// is exact; quoted ones are scanned for the closing quote.
func scalarEnd(src []byte, start int, n *yaml.Node) (int, error) {
	style := n.Style
	if style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		if end := start + len(n.Value); end <= len(src) && string(src[start:end]) == n.Value {
			return end, nil
		}
		return 0, errors.New("multi-line plain scalars are not edited; write the value on one line")
	}
	lineEnd := bytes.IndexByte(src[start:], '\n')
	if lineEnd < 0 {
		lineEnd = len(src)
	} else {
		lineEnd += start
	}
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := start + 1; i < lineEnd; i++ {
			switch src[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			}
		}
		return 0, errors.New("multi-line quoted scalars are not edited")
	case style&yaml.SingleQuotedStyle != 0:
		for i := start + 1; i < lineEnd; i++ {
			if src[i] == '\'' {
				if i+1 < lineEnd && src[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			}
		}
		return 0, errors.New("multi-line quoted scalars are not edited")
	}
	return 0, errors.New("unsupported scalar")
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	}
	return "scalar"
}

// mapGet returns the key and value nodes of key in mapping m.
func mapGet(m *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// lastLine is the last line a node's text reaches.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		if l := lastLine(c); l > last {
			last = l
		}
	}
	return last
}

// insertAfterLine is an edit inserting text (whole lines) after line.
func insertAfterLine(src []byte, starts []int, line int, text string) edit {
	if line >= len(starts) {
		// Last line without a trailing newline.
		return edit{start: len(src), end: len(src), text: "\n" + strings.TrimSuffix(text, "\n")}
	}
	at := starts[line]
	if at > len(src) {
		at = len(src)
	}
	return edit{start: at, end: at, text: text}
}
