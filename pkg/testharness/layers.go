package testharness

import (
	"archive/tar"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// EachLayerEntry calls fn with every entry of every layer of img, in order: the layer's index
// and the entry's header, its name without a leading "./".
func EachLayerEntry(t testing.TB, img v1.Image, fn func(layer int, h *tar.Header)) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				t.Fatalf("layer %d: %v", i, err)
			}
			h.Name = strings.TrimPrefix(h.Name, "./")
			fn(i, h)
		}
		rc.Close()
	}
}
