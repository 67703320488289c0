package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DataKey is the ConfigMap key holding the records, a JSON array newest first.
const DataKey = "records.json"

// ErrCorrupt marks a history whose records cannot be read, so callers can
// tell a broken ConfigMap (a person must look) from a transient API error.
var ErrCorrupt = errors.New("history: unreadable records")

// ErrTooLarge marks a record that alone exceeds the byte budget; retrying
// cannot help, so the caller should report it rather than requeue.
var ErrTooLarge = errors.New("history: record too large")

// Encode renders records (already ordered newest first) as ConfigMap data.
// It neither sorts nor trims: Store.Append does that, so a caller encoding
// a history for export gets exactly what it passed.
func Encode(records []Record) (map[string]string, error) {
	data, _, err := encodeBounded(records, len(records), math.MaxInt)
	if err != nil {
		return nil, err
	}
	return map[string]string{DataKey: data}, nil
}

// Decode reads the records of a history ConfigMap, newest first. A nil
// ConfigMap, a missing key or a blank value is an empty history; a value that
// is not a JSON array of records is an error wrapping ErrCorrupt.
func Decode(cm *corev1.ConfigMap) ([]Record, error) {
	if cm == nil {
		return nil, nil
	}
	raw, ok := cm.Data[DataKey]
	if !ok || strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var records []Record
	if err := json.Unmarshal([]byte(raw), &records); err != nil {
		return nil, fmt.Errorf("%w in ConfigMap %s/%s key %s: %v", ErrCorrupt, cm.Namespace, cm.Name, DataKey, err)
	}
	if len(records) == 0 {
		return nil, nil
	}
	return records, nil
}

// encodeBounded renders the longest prefix of records that holds at most
// limit records and budget bytes, and says how many it kept. Records are
// marshalled one at a time so trimming costs one pass, whatever the size.
func encodeBounded(records []Record, limit, budget int) (string, int, error) {
	var lines [][]byte
	size := len("[\n\n]\n") - len(",\n")
	for _, rec := range records {
		if len(lines) == limit {
			break
		}
		line, err := marshalLine(rec)
		if err != nil {
			return "", 0, fmt.Errorf("encoding history record %q: %w", rec.ID, err)
		}
		if size+len(line)+len(",\n") > budget {
			break
		}
		size += len(line) + len(",\n")
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return "[]\n", 0, nil
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString("[\n")
	b.Write(bytes.Join(lines, []byte(",\n")))
	b.WriteString("\n]\n")
	return b.String(), len(lines), nil
}

// marshalLine encodes one record on one line, leaving <, > and & as they
// are: the value is read by people, not embedded in HTML.
func marshalLine(rec Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
