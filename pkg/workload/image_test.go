package workload

import "testing"

func TestSameImage(t *testing.T) {
	const d = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const other = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"reg:5000/team/web:v1@" + d, "reg:5000/team/web:v1@" + d, true},
		{"reg:5000/team/web@" + d, "reg:5000/team/web:v1@" + d, true},
		{"reg:5000/team/web:v2@" + d, "reg:5000/team/web:v1@" + d, true},
		{"reg:5000/team/web@" + other, "reg:5000/team/web:v1@" + d, false},
		{"reg:5000/team/api@" + d, "reg:5000/team/web:v1@" + d, false},
		{"reg:5000/team/web:v1", "reg:5000/team/web:v1@" + d, false},
	} {
		if got := SameImage(c.a, c.b); got != c.want {
			t.Errorf("SameImage(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
