package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestGetFetchesLayersInParallelOnce: a get of a 7-layer image with max_concurrent_downloads 3
// has exactly 3 layer downloads open at once, and writes image.tar, image (save) and rootfs/
// (rootfs: true) from one download of each blob.
func TestGetFetchesLayersInParallelOnce(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := testharness.MultiLayerImage(t, 6, 256<<10)
	digest := reg.Push(t, reg.Ref("layers:1"), img)
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	gate := testharness.NewGate(3)
	via := reg.WithBlobGate(t, gate, config)

	reg.ResetRequests()
	dir := t.TempDir()
	res := testharness.Run(t, "in", map[string]any{
		"source":  source(via, "layers", "max_concurrent_downloads", 3),
		"version": map[string]string{"digest": digest.String()},
		"params":  map[string]any{"format": "oci", "save": true, "rootfs": true},
	}, dir)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	if gate.Most() != 3 {
		t.Errorf("%d layer downloads were open at once, want 3 (max_concurrent_downloads)", gate.Most())
	}
	assertEachBlobOnce(t, reg)
	blobs := map[string]bool{}
	for _, r := range reg.Requests() {
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") {
			blobs[r.Path] = true
		}
	}
	layers, _ := img.Layers()
	if len(blobs) != len(layers)+1 { // and the config
		t.Errorf("%d blobs downloaded, want %d", len(blobs), len(layers)+1)
	}
	for _, f := range []string{"image.tar", "image", "rootfs", "rootfs.tar", "metadata.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".*")); len(entries) != 0 {
		t.Errorf("staging left in the volume: %v", entries)
	}
}

// TestGetDownloadsBoundedByTheParam: max_concurrent_downloads above go-containerregistry's own
// default of 4 really opens that many streams (its pull limiter follows the param).
func TestGetDownloadsBoundedByTheParam(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := testharness.MultiLayerImage(t, 8, 64<<10)
	digest := reg.Push(t, reg.Ref("wide:1"), img)
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	gate := testharness.NewGate(6)
	via := reg.WithBlobGate(t, gate, config)
	res := testharness.Run(t, "in", map[string]any{
		"source":  source(via, "wide", "max_concurrent_downloads", 6),
		"version": map[string]string{"digest": digest.String()},
		"params":  map[string]any{"format": "oci"},
	}, t.TempDir())
	if res.ExitCode != 0 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	if gate.Most() != 6 {
		t.Errorf("%d layer downloads were open at once, want 6 (max_concurrent_downloads)", gate.Most())
	}
}

// TestFromPullBoundedByTheParam: a FROM no get saved is pulled by buildah, its layers as many at
// once as max_concurrent_downloads says (2 here, below containers/image's own 6).
func TestFromPullBoundedByTheParam(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := testharness.MultiLayerImage(t, 6, 64<<10)
	reg.Push(t, reg.Ref("wide:1"), img)
	config, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	gate := testharness.NewGate(2)
	via := reg.WithBlobGate(t, gate, config)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+via.Host+"/wide:1\nLABEL pulled=yes\n")
	put(t, work, source(via, "app", "max_concurrent_downloads", 2), map[string]any{"build": "ctx"})
	if gate.Most() != 2 {
		t.Errorf("%d layer downloads of the FROM pull were open at once, want 2 (max_concurrent_downloads)", gate.Most())
	}
}
