package build

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/containers/storage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
)

// TestLoadBaseStoresItAsContainersImageWould: an OCI base is stored straight from its blobs,
// under the ID, names, digests and layer IDs containers/image's copy would give it; a second base
// that is the same image only adds names.
func TestLoadBaseStoresItAsContainersImageWould(t *testing.T) {
	bb := busybox(t)
	store := testStore(t)
	names := []string{"docker.io/library/busybox:latest"}
	if err := loadBase(context.Background(), store, nil, Base{Names: names, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}, quietLog()); err != nil {
		t.Fatal(err)
	}
	again := []string{"example.com/busybox:1"}
	if err := loadBase(context.Background(), store, nil, Base{Names: again, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}, quietLog()); err != nil {
		t.Fatalf("loading the same image again: %v", err)
	}

	img, err := store.Image(names[0])
	if err != nil {
		t.Fatal(err)
	}
	configDigest, _ := bb.image.ConfigName()
	if img.ID != configDigest.Hex {
		t.Errorf("image ID %s, want the config digest %s", img.ID, configDigest.Hex)
	}
	if img.Digest.String() != bb.digest {
		t.Errorf("image digest %s, want %s", img.Digest, bb.digest)
	}
	if !strings.Contains(strings.Join(img.Names, " "), again[0]) {
		t.Errorf("names %v lack %s", img.Names, again[0])
	}
	layers, _ := bb.image.Layers()
	cfg, _ := bb.image.ConfigFile()
	top, err := store.Layer(img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := layers[len(layers)-1].Digest()
	if top.CompressedDigest.String() != want.String() || top.UncompressedDigest.String() != cfg.RootFS.DiffIDs[len(layers)-1].String() {
		t.Errorf("top layer digests %s, %s; want %s, %s", top.CompressedDigest, top.UncompressedDigest, want, cfg.RootFS.DiffIDs[len(layers)-1])
	}
	if len(layers) == 1 && top.ID != cfg.RootFS.DiffIDs[0].Hex {
		t.Errorf("layer ID %s, want its diffID %s", top.ID, cfg.RootFS.DiffIDs[0].Hex)
	}
	for _, key := range []string{storage.ImageDigestBigDataKey, configDigest.String()} {
		if _, err := store.ImageBigData(img.ID, key); err != nil {
			t.Errorf("big data %s: %v", key, err)
		}
	}
}

// TestLoadBaseRefusesAWrongDiffID: a layer whose bytes are not what the config says is refused
// and not left in storage.
func TestLoadBaseRefusesAWrongDiffID(t *testing.T) {
	bb := busybox(t)
	store := testStore(t)
	bad := wrongDiffIDs{Image: bb.image}
	err := loadBase(context.Background(), store, nil, Base{Names: []string{"docker.io/library/bad:1"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bad}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "holds bytes with digest") {
		t.Fatalf("loadBase = %v, want a digest mismatch", err)
	}
	if layers, _ := store.Layers(); len(layers) != 0 {
		t.Errorf("storage kept %d layers", len(layers))
	}
}

// wrongDiffIDs is an image whose config lists made-up diffIDs.
type wrongDiffIDs struct{ v1.Image }

func (w wrongDiffIDs) ConfigFile() (*v1.ConfigFile, error) {
	cfg, err := w.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	for i := range cfg.RootFS.DiffIDs {
		cfg.RootFS.DiffIDs[i] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	}
	return cfg, nil
}

func testStore(t *testing.T) storage.Store {
	t.Helper()
	dir := t.TempDir()
	store, err := openStore(dir, "", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		store.Shutdown(true)
		removeAll(dir)
	})
	return store
}

func quietLog() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}
