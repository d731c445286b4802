package resource

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
)

// TestNoCacheKeepsCacheMounts: no_cache runs every step again, as BuildKit's --no-cache, but the
// cache mounts the steps use are still restored (and saved): they are package caches, not layers.
func TestNoCacheKeepsCacheMounts(t *testing.T) {
	var log bytes.Buffer
	model, err := dockerfile.Parse([]byte("FROM busybox\nRUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs true\n"), dockerfile.Args{})
	if err != nil {
		t.Fatal(err)
	}
	p := &put{dir: t.TempDir(), params: api.OutParams{NoCache: true, CacheMounts: &api.CacheMounts{All: true}}, env: Env{Log: NewLogger(&log)}}
	mounts, err := restoreCacheMounts(context.Background(), p, model, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if mounts == nil || len(mounts.mounts) != 1 || mounts.mounts[0].ID != "pkgs" {
		t.Fatalf("no_cache: true dropped the cache mounts: %+v", mounts)
	}
	if !strings.Contains(log.String(), "cache mount pkgs: nothing saved yet, starting empty") {
		t.Errorf("log %q", log.String())
	}
}
