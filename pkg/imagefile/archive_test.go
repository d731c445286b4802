package imagefile_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// The archive's blobs are written to their places in any order, yet the file is byte for byte
// the tar a sequential archive/tar writer makes of the layout (the layout this resource always
// wrote): a layer listed twice included.
func TestOCIArchiveIsTheSequentialTar(t *testing.T) {
	img := testharness.MultiLayerImage(t, 3, 5000)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers[1])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := imagefile.WriteOCIArchive(path, img, "r.example/app:1"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := sequentialTar(t, img, "r.example/app:1"); !bytes.Equal(got, want) {
		t.Fatalf("the archive (%d bytes) differs from the sequential tar (%d bytes)", len(got), len(want))
	}
}

// sequentialTar writes the OCI archive of img entry after entry with archive/tar.
func sequentialTar(t *testing.T, img v1.Image, refName string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	file := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		digest, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		file("blobs/sha256/"+digest.Hex, data)
	}
	config, _ := img.RawConfigFile()
	configName, _ := img.ConfigName()
	file("blobs/sha256/"+configName.Hex, config)
	manifest, _ := img.RawManifest()
	digest, _ := img.Digest()
	file("blobs/sha256/"+digest.Hex, manifest)
	mt, _ := img.MediaType()
	index, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: mt, Size: int64(len(manifest)), Digest: digest, Annotations: map[string]string{imagefile.RefNameAnnotation: refName},
	}}})
	file("index.json", index)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A manifest declaring an absurd blob size is refused before anything is fetched or written.
func TestStageArchiveRefusesAbsurdSizes(t *testing.T) {
	img := testharness.MultiLayerImage(t, 1, 1000)
	for _, size := range []int64{-1, 1 << 62} {
		dir := t.TempDir()
		_, err := imagefile.StageArchive(declaredSize{img, size}, filepath.Join(dir, "image.tar"), "", 1)
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("size %d: want a refusal, got %v", size, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("size %d: left %v", size, entries)
		}
	}
}

// declaredSize is an image whose manifest declares size bytes for its last layer.
type declaredSize struct {
	v1.Image
	size int64
}

func (i declaredSize) Manifest() (*v1.Manifest, error) {
	m, err := i.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.Layers[len(m.Layers)-1].Size = i.size
	return m, nil
}
