package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestVersionTagsPlan: a listing is split into what costs nothing (a tag
// known to carry the digest), tags new since the last listing, tags listed
// before but never asked, and tags known to carry another digest, each
// newest first.
func TestVersionTagsPlan(t *testing.T) {
	c := newVersionTags(0, 0)
	known, fresh, stale, others := c.plan("r", []string{"1.0.0", "1.2.0", "1.10.0"}, "sha256:new")
	if diff := cmp.Diff([]string{"1.10.0", "1.2.0", "1.0.0"}, fresh); known != "" || diff != "" || stale != nil || others != nil {
		t.Fatalf("first listing: known %q stale %v others %v fresh (-want +got):\n%s", known, stale, others, diff)
	}
	c.observe("r", "1.10.0", "sha256:a")
	known, fresh, stale, others = c.plan("r", []string{"1.0.0", "1.2.0", "1.10.0", "1.11.0"}, "sha256:new")
	got := [][]string{{known}, fresh, stale, others}
	want := [][]string{{""}, {"1.11.0"}, {"1.2.0", "1.0.0"}, {"1.10.0"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second listing (-want +got):\n%s", diff)
	}
	c.observe("r", "1.11.0", "sha256:new")
	if known, fresh, _, _ = c.plan("r", []string{"1.0.0", "1.2.0", "1.10.0", "1.11.0"}, "sha256:new"); known != "1.11.0" || fresh != nil {
		t.Errorf("a known tag: known %q fresh %v, want 1.11.0 and nothing to ask", known, fresh)
	}
}

// TestNewestFirst: the policy's order, newest first: semantic versions by
// precedence (above other tags), numbered builds by number, others in
// reverse lexical order.
func TestNewestFirst(t *testing.T) {
	got := newestFirst([]string{"abc1234", "v1.9.0", "v1.10.0", "v1.10.0-rc.1", "fff0000", "0a1b2c3"})
	want := []string{"v1.10.0", "v1.10.0-rc.1", "v1.9.0", "fff0000", "abc1234", "0a1b2c3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1041", "1040", "999"}, newestFirst([]string{"999", "1040", "1041"})); diff != "" {
		t.Errorf("numbered builds (-want +got):\n%s", diff)
	}
}

// TestVersionTagsEviction: past maxTags the oldest digests are forgotten
// (their tags become "listed, never asked" again), and past maxRepos the
// least recently used repository goes.
func TestVersionTagsEviction(t *testing.T) {
	c := newVersionTags(2, 2)
	c.plan("r", []string{"a", "b", "c"}, "sha256:x")
	c.observe("r", "a", "sha256:a")
	c.observe("r", "b", "sha256:b")
	c.observe("r", "c", "sha256:c") // evicts a
	_, fresh, stale, others := c.plan("r", []string{"a", "b", "c"}, "sha256:x")
	if diff := cmp.Diff([][]string{nil, {"a"}, {"c", "b"}}, [][]string{fresh, stale, others}); diff != "" {
		t.Errorf("after evicting a tag (-want +got):\n%s", diff)
	}
	c.plan("s", []string{"x"}, "sha256:x")
	c.plan("r", []string{"a"}, "sha256:x") // r used after s
	c.plan("u", []string{"y"}, "sha256:x") // evicts s
	if _, ok := c.repos["s"]; ok || len(c.repos) != 2 {
		t.Errorf("repositories kept %v, want r and u", keys(c.repos))
	}
}

// TestVersionTagsObserveReportsRepush: observing a known version tag on
// another digest reports the digest it had.
func TestVersionTagsObserveReportsRepush(t *testing.T) {
	c := newVersionTags(0, 0)
	if prev := c.observe("r", "v1", "sha256:a"); prev != "" {
		t.Errorf("first observation reported %q", prev)
	}
	if prev := c.observe("r", "v1", "sha256:a"); prev != "" {
		t.Errorf("same digest reported %q", prev)
	}
	if prev := c.observe("r", "v1", "sha256:b"); prev != "sha256:a" {
		t.Errorf("re-push reported %q, want sha256:a", prev)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
