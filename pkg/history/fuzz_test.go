package history

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecode feeds arbitrary ConfigMap values to Decode: it must never panic,
// must fail only with ErrCorrupt, and whatever it accepts must survive an
// Encode/Decode round trip unchanged, since Append rewrites what it reads.
func FuzzDecode(f *testing.F) {
	good, _ := Encode([]Record{
		rec("2", 2, func(r *Record) {
			r.FromVersion, r.FromDigest, r.Reason, r.DurationSeconds = "v1", "sha256:1", "probe <failed> & ✗", 3.25
			r.Jobs = []JobRecord{{Name: "migrate", Outcome: OutcomeSuccess}}
		}),
		rec("1", 1),
	})
	for _, seed := range []string{
		good[DataKey], "", " ", "[]", "null", "{}", `"x"`, "[", `[{"id":`, `[{"id":"a"}]`,
		`[{"time":"2025-01-02T03:04:05.999999999+14:00"}]`, `[{"time":"0000-01-01T00:00:00Z"}]`, `[{"time":"0000-01-01T00:00:00+01:00"}]`,
		`[{"time":"9999-12-31T23:59:59Z","durationSeconds":1e308}]`, `[{"durationSeconds":1e999}]`,
		`[{"jobs":[{"name":"j"},null]},null]`, "[{\"reason\":\"\xff\xfe\"}]", `[{"id":"\u0000\ud800"}]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		records, err := Decode(cmWith(value))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		data, err := Encode(records)
		if err != nil {
			t.Fatalf("Encode of decoded records: %v", err)
		}
		again, err := Decode(cmWith(data[DataKey]))
		if err != nil {
			t.Fatalf("Decode of re-encoded records: %v\n%s", err, data[DataKey])
		}
		if diff := cmp.Diff(records, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
