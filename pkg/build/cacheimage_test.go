package build

import (
	"slices"
	"testing"
)

// TestCacheImageMakesBuildahHit: a second build in a fresh storage, given the first build's
// image as CacheImage with its first three instructions, runs none of them (buildah's layer cache
// hits the intermediate images made from it) and reuses their layers as they are.
func TestCacheImageMakesBuildahHit(t *testing.T) {
	bb := busybox(t)
	opts := Options{Bases: []Base{{
		Names: []string{"docker.io/library/busybox:latest"}, Digest: bb.digest,
		Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image,
	}}}
	first, _ := build(t, "single", opts)

	opts.CacheImage = &CacheImage{Image: first.Image, Steps: 3, From: "docker.io/library/busybox:latest", Ref: "first"}
	second, out := build(t, "single", opts)
	var cached []bool
	for _, s := range second.Steps {
		cached = append(cached, s.Cached)
	}
	if want := []bool{false, true, true, true, false}; !slices.Equal(cached, want) {
		t.Errorf("cached steps %v, want %v\n%s", cached, want, out)
	}
	if second.CacheBytesRead == 0 {
		t.Error("no layer read from the cache image")
	}
	m1, _ := first.Image.Manifest()
	m2, _ := second.Image.Manifest()
	for i := range m1.Layers {
		if m1.Layers[i].Digest != m2.Layers[i].Digest {
			t.Errorf("layer %d: %s, the cache image's is %s", i, m2.Layers[i].Digest, m1.Layers[i].Digest)
		}
	}
}
