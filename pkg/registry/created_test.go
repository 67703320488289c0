package registry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestConfigCreated reads `created` from a real registry: a plain image,
// an image without it, and a multi-arch index (its first image).
func TestConfigCreated(t *testing.T) {
	reg := startRegistry(t)
	ctx := testContext(t)
	built := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := reg.PushCreated("team/app", built, "dated"); err != nil {
		t.Fatal(err)
	}
	push(t, reg, "team/app", "undated")
	pushCreatedIndex(t, reg.Repo("team/app")+":multi", built.Add(time.Hour))

	r := Repo{Name: reg.Repo("team/app")}
	reader := ConfigCreated{Reader: insecureOCI()}
	for _, tc := range []struct {
		tag  string
		want time.Time
	}{
		{"dated", built},
		{"undated", time.Time{}},
		{"multi", built.Add(time.Hour)},
	} {
		got, err := reader.Created(ctx, r, tc.tag)
		if err != nil {
			t.Fatalf("%s: %v", tc.tag, err)
		}
		if diff := cmp.Diff(tc.want.UTC(), got.UTC()); diff != "" {
			t.Errorf("created of %s (-want +got):\n%s", tc.tag, diff)
		}
	}
	if _, err := reader.Created(ctx, r, "missing"); !IsNotFound(err) {
		t.Errorf("a missing tag: %v, want a not-found error", err)
	}
	if _, err := insecureOCI().Resolve(ctx, ResolveRequest{Repo: r, Tag: "missing"}); !IsNotFound(err) {
		t.Errorf("resolving a missing tag: %v, want a not-found error", err)
	}
}

func pushCreatedIndex(t *testing.T, ref string, created time.Time) {
	t.Helper()
	img, err := random.Image(64, 1)
	if err == nil {
		img, err = mutate.CreatedAt(img, v1.Time{Time: created})
	}
	if err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{Add: img})
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
}
