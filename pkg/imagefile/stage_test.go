package imagefile_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

type gatedImage struct {
	v1.Image
	gate *testharness.Gate
}

func (i gatedImage) Layers() ([]v1.Layer, error) {
	layers, err := i.Image.Layers()
	for n, l := range layers {
		layers[n] = gatedLayer{Layer: l, gate: i.gate}
	}
	return layers, err
}

func (i gatedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	return gatedLayer{Layer: l, gate: i.gate}, err
}

type gatedLayer struct {
	v1.Layer
	gate *testharness.Gate
}

func (l gatedLayer) Compressed() (io.ReadCloser, error) {
	l.gate.Enter()
	rc, err := l.Layer.Compressed()
	return readCloser{rc, l.gate.Leave}, err
}

type readCloser struct {
	io.ReadCloser
	done func()
}

func (r readCloser) Close() error { r.done(); return r.ReadCloser.Close() }

func TestStageFetchesLayersInParallelWithinTheBound(t *testing.T) {
	img := testharness.MultiLayerImage(t, 6, 64<<10)
	g := testharness.NewGate(3)
	parent := t.TempDir()
	staged, err := imagefile.Stage(gatedImage{Image: img, gate: g}, parent, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := staged.Wait(); err != nil {
		t.Fatal(err)
	}
	if g.Most() != 3 {
		t.Fatalf("at most %d layers were fetched at once, want 3 (the bound)", g.Most())
	}
	assertSameImage(t, img, staged.Image)
	if err := staged.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("Close left %v", entries)
	}
}

type flippedLayer struct{ v1.Layer }

func (l flippedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	data[len(data)/2] ^= 1
	return io.NopCloser(bytes.NewReader(data)), err
}

type flippedImage struct{ v1.Image }

func (i flippedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	return flippedLayer{l}, err
}

func (i flippedImage) Layers() ([]v1.Layer, error) {
	layers, err := i.Image.Layers()
	layers[len(layers)-1] = flippedLayer{layers[len(layers)-1]}
	return layers, err
}

// A blob that does not check out fails the stage, into a blob directory or an archive, and
// nothing of it is left.
func TestStageRefusesWrongBytesAndLeavesNothing(t *testing.T) {
	img := testharness.MultiLayerImage(t, 3, 16<<10)
	for name, stage := range map[string]func(img v1.Image, dir string) (*imagefile.Staged, error){
		"Stage": func(img v1.Image, dir string) (*imagefile.Staged, error) { return imagefile.Stage(img, dir, 2) },
		"StageArchive": func(img v1.Image, dir string) (*imagefile.Staged, error) {
			return imagefile.StageArchive(img, filepath.Join(dir, "image.tar"), "", 2)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			staged, err := stage(flippedImage{img}, dir)
			if err != nil {
				t.Fatal(err)
			}
			err = staged.Wait()
			staged.Close()
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("want a refusal, got %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a failed stage left %v", entries)
			}
		})
	}
}

// heldLayer's stream opens only once release is closed (or a generous deadline passed, so a
// failing test never hangs); opened says it has.
type heldLayer struct {
	v1.Layer
	release chan struct{}
	opened  *atomic.Bool
}

func (l heldLayer) Compressed() (io.ReadCloser, error) {
	select {
	case <-l.release:
	case <-time.After(10 * time.Second):
	}
	l.opened.Store(true)
	return l.Layer.Compressed()
}

type heldImage struct {
	v1.Image
	last v1.Hash
	held heldLayer
}

func (i heldImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if h == i.last {
		i.held.Layer = l
		return i.held, err
	}
	return l, err
}

// A staged layer can be read (unpacked, copied) while later layers are still on their way.
func TestStagedLayerIsReadableBeforeTheLastArrives(t *testing.T) {
	img := testharness.MultiLayerImage(t, 3, 16<<10)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	last, _ := layers[len(layers)-1].Digest()
	release, opened := make(chan struct{}), new(atomic.Bool)
	staged, err := imagefile.Stage(heldImage{img, last, heldLayer{release: release, opened: opened}}, t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Close()
	stagedLayers, err := staged.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := stagedLayers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := v1.SHA256(rc)
	rc.Close()
	if opened.Load() {
		t.Fatal("the first layer was readable only once the last one was on its way")
	}
	close(release)
	if want, _ := layers[0].Digest(); err != nil || got != want {
		t.Fatalf("first layer read as %s (%v), want %s", got, err, want)
	}
	if err := staged.Wait(); err != nil {
		t.Fatal(err)
	}
	assertSameImage(t, img, staged.Image)
}
