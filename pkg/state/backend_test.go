package state_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"cvmanager.dev/cvmanager/pkg/state"
	"cvmanager.dev/cvmanager/pkg/state/statetest"
)

// backends runs f against a local directory and an S3 bucket (plain and
// versioned) on a real S3-compatible server.
func backends(t *testing.T, f func(t *testing.T, b state.Backend)) {
	t.Run("local", func(t *testing.T) {
		b, err := state.NewLocal(filepath.Join(t.TempDir(), "state"))
		if err != nil {
			t.Fatal(err)
		}
		f(t, b)
	})
	srv := statetest.StartS3(t)
	for _, versioned := range []bool{false, true} {
		t.Run(fmt.Sprintf("s3-versioned=%v", versioned), func(t *testing.T) {
			bucket := fmt.Sprintf("bucket-%v", versioned)
			srv.Bucket(t, bucket, versioned)
			b, err := state.NewS3(context.Background(), state.S3Options{Path: "s3://" + bucket + "/team/prod", Endpoint: srv.Endpoint, PathStyle: true})
			if err != nil {
				t.Fatal(err)
			}
			f(t, b)
		})
	}
}

func TestBackendPutGetListDelete(t *testing.T) {
	backends(t, func(t *testing.T, b state.Backend) {
		ctx := context.Background()
		if _, err := b.Get(ctx, "cvs/a/x.json", ""); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
		}
		for _, k := range []string{"cvs/a/x.json", "cvs/b/y.json", "manifest.json"} {
			if _, err := b.Put(ctx, k, []byte("data of "+k)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := b.Get(ctx, "cvs/b/y.json", "")
		if err != nil || string(got) != "data of cvs/b/y.json" {
			t.Fatalf("Get = %q, %v", got, err)
		}
		list, err := b.List(ctx, "cvs/")
		if err != nil {
			t.Fatal(err)
		}
		want := []state.ObjectInfo{{Key: "cvs/a/x.json", Size: 20}, {Key: "cvs/b/y.json", Size: 20}}
		if diff := cmp.Diff(want, list); diff != "" {
			t.Errorf("List (-want +got):\n%s", diff)
		}
		if err := b.Delete(ctx, []string{"cvs/a/x.json", "cvs/never.json"}); err != nil {
			t.Fatal(err)
		}
		if list, _ = b.List(ctx, ""); len(list) != 2 {
			t.Errorf("after Delete: %v, want 2 objects", list)
		}
		if err := b.Clear(ctx); err != nil {
			t.Fatal(err)
		}
		if list, _ = b.List(ctx, ""); len(list) != 0 {
			t.Errorf("after Clear: %v, want none", list)
		}
	})
}

// TestBackendListPaginates stores more objects than one S3 listing page
// holds (1,000) and expects every one back.
func TestBackendListPaginates(t *testing.T) {
	backends(t, func(t *testing.T, b state.Backend) {
		ctx := context.Background()
		const n = 1234
		for i := range n {
			if _, err := b.Put(ctx, fmt.Sprintf("cvs/ns/cv-%04d.json", i), []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
		list, err := b.List(ctx, "cvs/")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != n || list[n-1].Key != fmt.Sprintf("cvs/ns/cv-%04d.json", n-1) {
			t.Fatalf("List returned %d objects (last %v), want %d", len(list), list[len(list)-1], n)
		}
	})
}

func TestS3ClearRemovesEveryVersion(t *testing.T) {
	srv := statetest.StartS3(t)
	srv.Bucket(t, "versioned", true)
	ctx := context.Background()
	b, err := state.NewS3(ctx, state.S3Options{Path: "versioned/p", Endpoint: srv.Endpoint, PathStyle: true, PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := range 3 { // three versions of one key, then a delete marker
		v, err := b.Put(ctx, "manifest.json", []byte(fmt.Sprint(i)))
		if err != nil || v == "" {
			t.Fatalf("Put on a versioned bucket = %q, %v; want a version id", v, err)
		}
		if i == 0 {
			first = v
		}
	}
	if old, err := b.Get(ctx, "manifest.json", first); err != nil || string(old) != "0" {
		t.Fatalf("Get of the first version = %q, %v", old, err)
	}
	for i := range 20 {
		_, _ = b.Put(ctx, fmt.Sprintf("cvs/n/%d.json", i), []byte("x"))
	}
	_ = b.Delete(ctx, []string{"cvs/n/0.json"})
	if n := srv.Versions(t, "versioned", "p/"); n != 3+20+1 {
		t.Fatalf("versions before Clear = %d, want 24", n)
	}
	if err := b.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.Versions(t, "versioned", "p/"); n != 0 {
		t.Errorf("versions after Clear = %d, want 0", n)
	}
}

func TestLocalRefusesEscapingKeys(t *testing.T) {
	dir := t.TempDir()
	b, _ := state.NewLocal(filepath.Join(dir, "state"))
	if _, err := b.Put(context.Background(), "../outside.json", []byte("x")); err != nil {
		t.Fatal(err) // cleaned to a key inside the directory
	}
	if _, err := os.Stat(filepath.Join(dir, "outside.json")); err == nil {
		t.Fatal("a key escaped the state directory")
	}
	if _, err := state.NewLocal(" "); err == nil {
		t.Error("an empty path was accepted")
	}
	if _, err := state.NewS3(context.Background(), state.S3Options{Path: "s3:///prefix"}); err == nil {
		t.Error("an S3 path without bucket was accepted")
	}
}
