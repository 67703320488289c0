package anchored

import "testing"

func TestCompileMatchesWholeStringsOnly(t *testing.T) {
	cases := []struct {
		expr    string
		matches []string
		refuses []string
	}{
		{"prod", []string{"prod"}, []string{"preprod", "prod-2", ""}},
		{"a|b", []string{"a", "b"}, []string{"ab", "xa", "bx"}},
		{"[0-9a-f]{5,40}", []string{"3f2a9c1"}, []string{"v3f2a9c1", "3f2a9c1-dirty", "3f2a"}},
		{"(?i)prod", []string{"PROD", "prod"}, []string{"PRODUCTION"}},
		{"", []string{""}, []string{"x"}},
		{"(a)|(b)", []string{"a", "b"}, []string{"ab"}},
	}
	for _, tc := range cases {
		re, err := Compile(tc.expr)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tc.expr, err)
		}
		for _, s := range tc.matches {
			if !re.MatchString(s) {
				t.Errorf("%q should match %q", tc.expr, s)
			}
		}
		for _, s := range tc.refuses {
			if re.MatchString(s) {
				t.Errorf("%q must not match %q", tc.expr, s)
			}
		}
	}
}

// Expressions that only compile once wrapped would escape the anchors.
func TestCompileRefusesExpressionsThatBreakOutOfTheAnchors(t *testing.T) {
	for _, expr := range []string{")|(", ").*|(", "x)|(.*", "(", `\`} {
		if re, err := Compile(expr); err == nil {
			t.Errorf("Compile(%q) accepted it as %q", expr, re)
		}
	}
}
