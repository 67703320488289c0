package provenance_test

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

	"cvmanager.dev/cvmanager/pkg/provenance"
	"cvmanager.dev/cvmanager/pkg/registry"
)

// TestCreated reads when an image was built from a real registry: a plain
// image, one without a build time, a multi-arch index whose entry names no
// platform, and a missing tag.
func TestCreated(t *testing.T) {
	reg, r := reader(t)
	built := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, err := reg.PushCreated("team/app", built, "dated"); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("team/app", "undated"); err != nil {
		t.Fatal(err)
	}
	pushCreatedIndex(t, reg.Repo("team/app")+":multi", built.Add(time.Hour))

	repo := registry.Repo{Name: reg.Repo("team/app")}
	created := provenance.CreatedReader{Reader: r}
	for _, tc := range []struct {
		tag  string
		want time.Time
	}{
		{"dated", built},
		{"undated", time.Time{}},
		{"multi", built.Add(time.Hour)},
	} {
		got, err := created.Created(t.Context(), repo, tc.tag)
		if err != nil {
			t.Fatalf("%s: %v", tc.tag, err)
		}
		if diff := cmp.Diff(tc.want.UTC(), got.UTC()); diff != "" {
			t.Errorf("created of %s (-want +got):\n%s", tc.tag, diff)
		}
	}
	if _, err := created.Created(t.Context(), repo, "missing"); !registry.IsNotFound(err) {
		t.Errorf("a missing tag: %v, want a not-found error", err)
	}
}

// pushCreatedIndex pushes an index of one image built at created, its entry
// without a platform (as some build tools write it).
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
