// Package anchored compiles user-given regular expressions that must match
// whole strings: versionSyntax, allowedVersions, tagRegex and the namespace
// part of --policy-version-restriction.
package anchored

import "regexp"

// Compile returns a regexp that matches a string only when expr matches all
// of it.
//
// expr is compiled on its own first. Wrapping it as ^(?:expr)$ without that
// check lets an expression such as ")|(" close the wrapper's group and
// escape the anchors: "^(?:)|()$" matches every string (found by
// FuzzParseRestriction). An expression that compiles alone has balanced
// groups, so the wrapper's group is the outermost one.
func Compile(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, err
	}
	return regexp.Compile("^(?:" + expr + ")$")
}
