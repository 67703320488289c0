package history

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// rec builds a record finished minutes after t0.
func rec(id string, minutes int, opts ...func(*Record)) Record {
	r := Record{
		ID: id, Time: t0.Add(time.Duration(minutes) * time.Minute),
		Workload: "Deployment/web", Container: "app",
		ToVersion: "v" + id, ToDigest: "sha256:" + strings.Repeat("a", 64),
		Strategy: "Simple", Outcome: OutcomeSuccess, Trigger: TriggerPoll,
	}
	for _, opt := range opts {
		opt(&r)
	}
	return r
}

func withReason(reason string) func(*Record) { return func(r *Record) { r.Reason = reason } }

func ids(records []Record) []string {
	out := []string{}
	for _, r := range records {
		out = append(out, r.ID)
	}
	return out
}

func cmWith(value string) *corev1.ConfigMap {
	return &corev1.ConfigMap{Data: map[string]string{DataKey: value}}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	full := rec("1", 0, func(r *Record) {
		r.FromVersion, r.FromDigest, r.Kind = "v0", "sha256:00", "Deployment"
		r.Reason, r.Outcome = `probe "GET /healthz" <500> & more`, OutcomeRolledBack
		r.Jobs = []JobRecord{{Name: "migrate", Outcome: OutcomeFailed, Reason: "exit 1"}}
		r.DurationSeconds = 12.5
	})
	tests := []struct {
		name    string
		records []Record
	}{
		{"empty", nil},
		{"one", []Record{rec("1", 0)}},
		{"all fields", []Record{full}},
		{"several newest first", []Record{rec("3", 2), rec("2", 1), rec("1", 0)}},
		{"unicode", []Record{rec("1", 0, withReason("déploiement échoué ✗"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := Encode(tt.records)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(&corev1.ConfigMap{Data: data})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.records, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEncodeFormat pins the stored text: one record per line, no HTML
// escaping, so kubectl shows it readably.
func TestEncodeFormat(t *testing.T) {
	tests := []struct {
		name    string
		records []Record
		want    string
	}{
		{"empty", nil, "[]\n"},
		{"two", []Record{
			{ID: "b", Time: t0, Workload: "Deployment/web", Container: "app", ToVersion: "v2", ToDigest: "sha256:2", Strategy: "Simple", Outcome: "Failed", Reason: "a<b&c"},
			{ID: "a", Time: t0, Workload: "Deployment/web", Container: "app", ToVersion: "v1", ToDigest: "sha256:1", Strategy: "Simple", Outcome: "Success"},
		}, `[
{"id":"b","time":"2025-01-02T03:04:05Z","workload":"Deployment/web","container":"app","toVersion":"v2","toDigest":"sha256:2","strategy":"Simple","outcome":"Failed","reason":"a<b&c"},
{"id":"a","time":"2025-01-02T03:04:05Z","workload":"Deployment/web","container":"app","toVersion":"v1","toDigest":"sha256:1","strategy":"Simple","outcome":"Success"}
]
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Encode(tt.records)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(map[string]string{DataKey: tt.want}, got); diff != "" {
				t.Errorf("Encode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		cm      *corev1.ConfigMap
		want    []string
		wantErr bool
	}{
		{name: "nil ConfigMap", cm: nil},
		{name: "no data", cm: &corev1.ConfigMap{}},
		{name: "other keys only", cm: &corev1.ConfigMap{Data: map[string]string{"x": "y"}}},
		{name: "empty value", cm: cmWith("")},
		{name: "blank value", cm: cmWith(" \n\t")},
		{name: "empty array", cm: cmWith("[]")},
		{name: "null", cm: cmWith("null")},
		{name: "unknown fields ignored", cm: cmWith(`[{"id":"x","future":{"a":1}}]`), want: []string{"x"}},
		{name: "compact array", cm: cmWith(`[{"id":"b"},{"id":"a"}]`), want: []string{"b", "a"}},
		{name: "truncated", cm: cmWith(`[{"id":"b"},{"id":`), wantErr: true},
		{name: "object", cm: cmWith(`{}`), wantErr: true},
		{name: "string", cm: cmWith(`"records"`), wantErr: true},
		{name: "bad time", cm: cmWith(`[{"id":"a","time":"yesterday"}]`), wantErr: true},
		{name: "wrong type", cm: cmWith(`[{"id":7}]`), wantErr: true},
		{name: "trailing garbage", cm: cmWith(`[] []`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.cm)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Decode error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), DataKey) {
					t.Errorf("error %q should wrap ErrCorrupt and name the key", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, ids(got), cmpEmpty); diff != "" {
				t.Errorf("Decode ids (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike: both are "no records".
var cmpEmpty = cmp.Transformer("nonNil", func(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
})

func TestEncodeBounded(t *testing.T) {
	huge := strings.Repeat("x", 300<<10)
	five := []Record{rec("5", 5), rec("4", 4), rec("3", 3), rec("2", 2), rec("1", 1)}
	sizeOf := func(records []Record) int {
		d, _ := Encode(records)
		return len(d[DataKey])
	}
	tests := []struct {
		name    string
		records []Record
		limit   int
		budget  int
		want    []string
	}{
		{"under bounds", five, 10, DefaultByteBudget, []string{"5", "4", "3", "2", "1"}},
		{"limit drops oldest", five, 3, DefaultByteBudget, []string{"5", "4", "3"}},
		{"limit one", five, 1, DefaultByteBudget, []string{"5"}},
		{"budget exactly two", five, 10, sizeOf(five[:2]), []string{"5", "4"}},
		{"budget one byte short of two", five, 10, sizeOf(five[:2]) - 1, []string{"5"}},
		{"budget too small for any", five, 10, 10, []string{}},
		{"huge reasons drop oldest", []Record{
			rec("4", 4, withReason(huge)), rec("3", 3, withReason(huge)),
			rec("2", 2, withReason(huge)), rec("1", 1),
		}, 50, DefaultByteBudget, []string{"4", "3"}},
		{"small records after a huge one still fit by order", []Record{
			rec("3", 3), rec("2", 2, withReason(strings.Repeat("y", DefaultByteBudget))), rec("1", 1),
		}, 50, DefaultByteBudget, []string{"3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, kept, err := encodeBounded(tt.records, tt.limit, tt.budget)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) > tt.budget && kept > 0 {
				t.Errorf("encoded %d bytes, over budget %d", len(data), tt.budget)
			}
			got, err := Decode(cmWith(data))
			if err != nil {
				t.Fatal(err)
			}
			if kept != len(got) {
				t.Errorf("kept = %d, but %d records encoded", kept, len(got))
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("kept ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name     string
		existing []Record
		add      Record
		want     []string
	}{
		{"into empty", nil, rec("1", 0), []string{"1"}},
		{"newest goes first", []Record{rec("2", 2), rec("1", 1)}, rec("3", 3), []string{"3", "2", "1"}},
		{"late older record sorts by time", []Record{rec("3", 3), rec("1", 1)}, rec("2", 2), []string{"3", "2", "1"}},
		{"same time: new first", []Record{rec("a", 1)}, rec("b", 1), []string{"b", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(merge(tt.existing, tt.add))); diff != "" {
				t.Errorf("merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short kept", "abc", 20, "abc"},
		{"exact kept", "abcdefghij", 10, "abcdefghij"},
		{"ascii cut", strings.Repeat("a", 30), 20, strings.Repeat("a", 20-len(truncatedMark)) + truncatedMark},
		{"never splits a rune", strings.Repeat("é", 20), 20, strings.Repeat("é", 2) + truncatedMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.max)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("truncate (-want +got):\n%s", diff)
			}
			if len(got) > tt.max {
				t.Errorf("len = %d, over %d", len(got), tt.max)
			}
		})
	}
}
