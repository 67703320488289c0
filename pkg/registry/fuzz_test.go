package registry

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseRepository: any input either fails cleanly or yields a
// repository that parses back to itself and never carries a tag or digest.
func FuzzParseRepository(f *testing.F) {
	for _, seed := range []string{"nginx", "team/app", "reg:5000/team/app", "reg:5000/team/app:v1", "app@sha256:" + strings.Repeat("0", 64),
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app", "localhost/x", "[::1]:5000/app", "a//b", ":", "/", "UPPER/case"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseRepository(in, false)
		if err != nil {
			return
		}
		again, err := ParseRepository(r.Name(), false)
		if err != nil {
			t.Fatalf("%q parsed to %q, which does not parse: %v", in, r.Name(), err)
		}
		if again.Name() != r.Name() {
			t.Fatalf("%q: %q re-parses to %q", in, r.Name(), again.Name())
		}
		if strings.Contains(r.RepositoryStr(), "@") || strings.Contains(r.RepositoryStr(), ":") {
			t.Fatalf("%q: repository part %q carries a tag or digest", in, r.RepositoryStr())
		}
		_ = KindOf(r.RegistryStr())
	})
}

// FuzzParseECR: a location, when found, rebuilds the input.
func FuzzParseECR(f *testing.F) {
	for _, seed := range []string{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app", "123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b",
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/x", "ghcr.io/x", "123456789012.dkr.ecr..amazonaws.com/x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		loc, err := ParseECR(in)
		if err != nil {
			return
		}
		if len(loc.Account) != 12 || loc.Region == "" || loc.Repository == "" {
			t.Fatalf("%q: incomplete %+v", in, loc)
		}
		if !strings.HasPrefix(in, loc.Account+".dkr.ecr") || !strings.HasSuffix(in, "/"+loc.Repository) {
			t.Fatalf("%q does not rebuild from %+v", in, loc)
		}
	})
}

// FuzzVersionSyntax: compiling any expression never panics, and a picked
// version always matches it and is one of the image's tags.
func FuzzVersionSyntax(f *testing.F) {
	f.Add("", "env-prod", "3f2a9c1,latest")
	f.Add(`v[0-9]+\.[0-9]+\.[0-9]+`, "stable", "v1.2.3,v1.10.0")
	f.Add(`a|b`, "ab", "a,b,ab")
	f.Add(`(`, "x", "")
	f.Add(`.*`, "", ",")
	f.Fuzz(func(t *testing.T, expr, tag, tagList string) {
		re, err := CompileVersionSyntax(expr)
		if err != nil {
			return
		}
		tags := strings.Split(tagList, ",")
		v := PickVersion(tag, tags, re)
		if v == "" {
			return
		}
		if !re.MatchString(v) {
			t.Fatalf("version %q does not match %q", v, expr)
		}
		if v != tag && !contains(tags, v) {
			t.Fatalf("version %q is neither the tag %q nor among %q", v, tag, tags)
		}
	})
}

// FuzzNextPage: whatever a registry sends, the next page stays on the
// registry's host and scheme, and never repeats the current page.
func FuzzNextPage(f *testing.F) {
	f.Add(`</v2/a/tags/list?last=b&n=2>; rel="next"`)
	f.Add(`/v2/a/tags/list?next_page=xyz; rel="next"`)
	f.Add(`<http://reg/v2/a/tags/list?last=b>; rel=next`)
	f.Add(`<https://other:1/x>; rel="next"`)
	f.Add(`<>; rel="next", <`)
	current, _ := url.Parse("http://reg:5000/v2/a/tags/list?n=2")
	f.Fuzz(func(t *testing.T, link string) {
		next, err := NextPage(link, current)
		if err != nil || next == nil {
			return
		}
		if next.Host != current.Host || next.Scheme != current.Scheme {
			t.Fatalf("link %q leads to %s", link, next)
		}
		if next.String() == current.String() {
			t.Fatalf("link %q repeats the current page", link)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
