package imagefile_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

var here = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

func TestOCIArchiveRoundTrip(t *testing.T) {
	img := testharness.MultiLayerImage(t, 2, 1<<16)
	dir := t.TempDir()
	path := filepath.Join(dir, "image.tar")
	if err := imagefile.WriteOCIArchive(path, img, "registry.example.com/app:1.0"); err != nil {
		t.Fatal(err)
	}
	a, err := imagefile.Open(dir, here)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	assertSameImage(t, img, a.Image)
	if a.Format != imagefile.OCIArchive || a.Name != "registry.example.com/app:1.0" {
		t.Errorf("format %s name %q", a.Format, a.Name)
	}
	if want, _ := img.Digest(); a.Digest != want {
		t.Errorf("digest %s, want %s", a.Digest, want)
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		out, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+path).Output()
		if err != nil {
			t.Fatalf("skopeo inspect: %v", err)
		}
		if raw, _ := img.RawManifest(); !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(raw)) {
			t.Errorf("skopeo read another manifest:\n%s", out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left temporary files: %v", entries)
	}
}

func TestDockerArchiveRoundTripAndSavedName(t *testing.T) {
	img := testharness.BusyboxImage(t)
	dir := t.TempDir()
	if err := imagefile.WriteDockerArchive(filepath.Join(dir, "image"), img, "registry.example.com/base:2"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "repository"), []byte("registry.example.com/base\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tag"), []byte("2"), 0o644)
	a, err := imagefile.Open(dir, here)
	if err != nil {
		t.Fatal(err)
	}
	if a.Format != imagefile.DockerArchive || a.Name != "registry.example.com/base:2" {
		t.Errorf("format %s name %q", a.Format, a.Name)
	}
	want, _ := img.ConfigName()
	if got, _ := a.Image.ConfigName(); got != want {
		t.Errorf("config %s, want %s", got, want)
	}
}

func TestOCILayoutKeepsTheIndex(t *testing.T) {
	idx := testharness.TwoPlatformIndex(t)
	dir := filepath.Join(t.TempDir(), "oci")
	if err := imagefile.WriteOCILayout(dir, idx, "r/multi:1", nil); err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		a, err := imagefile.Open(filepath.Dir(dir), v1.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := a.Image.ConfigFile()
		if cfg.Architecture != arch || a.Format != imagefile.OCILayout {
			t.Errorf("asked for %s, got %s (%s)", arch, cfg.Architecture, a.Format)
		}
	}
	if _, err := imagefile.Open(filepath.Dir(dir), v1.Platform{OS: "linux", Architecture: "s390x"}); !errors.Is(err, imagefile.ErrNoPlatform) || !strings.Contains(err.Error(), "no image for platform linux/s390x") {
		t.Errorf("missing platform: %v", err)
	}
}

func TestDetectRefusesWhatIsNotAnImage(t *testing.T) {
	empty := t.TempDir()
	if _, _, err := imagefile.Detect(empty); err == nil || !strings.Contains(err.Error(), "no image found") {
		t.Errorf("empty dir: %v", err)
	}
	notTar := filepath.Join(t.TempDir(), "image.tar")
	os.WriteFile(notTar, []byte("hello, this is not a tar"), 0o644)
	if _, err := imagefile.Open(notTar, here); err == nil || !strings.Contains(err.Error(), "not a readable tar") {
		t.Errorf("not a tar: %v", err)
	}
	truncated := filepath.Join(t.TempDir(), "image.tar")
	full := filepath.Join(t.TempDir(), "full.tar")
	if err := imagefile.WriteOCIArchive(full, testharness.BusyboxImage(t), ""); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(full)
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	a, err := imagefile.Open(truncated, here)
	if err == nil {
		_, err = a.Image.Layers()
	}
	if err == nil {
		t.Error("a truncated archive opened cleanly")
	}
}

func TestRootfsStaysInside(t *testing.T) {
	img := testharness.BusyboxImage(t)
	dir := t.TempDir()
	if err := imagefile.WriteRootfs(dir, img); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, "rootfs/bin/busybox")); err != nil || info.Mode()&0o111 == 0 {
		t.Fatalf("busybox: %v %v", info, err)
	}
	var meta imagefile.Metadata
	data, _ := os.ReadFile(filepath.Join(dir, "metadata.json"))
	if err := json.Unmarshal(data, &meta); err != nil || len(meta.Env) == 0 {
		t.Fatalf("metadata.json %s: %v", data, err)
	}

	// Hostile layers: package extract's tests and pkg/e2e/hostile_test.go.
}

func TestImportMakesOneLayer(t *testing.T) {
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("hi"))
	tw.Close()
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	os.WriteFile(path, rootfs.Bytes(), 0o644)
	img, err := imagefile.Import(path)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	cfg, _ := img.ConfigFile()
	if len(layers) != 1 || cfg.Architecture != runtime.GOARCH {
		t.Fatalf("%d layers, arch %s", len(layers), cfg.Architecture)
	}
}

func assertSameImage(t *testing.T, want, got v1.Image) {
	t.Helper()
	wm, _ := want.RawManifest()
	gm, err := got.RawManifest()
	if err != nil || !bytes.Equal(wm, gm) {
		t.Fatalf("manifest differs: %v", err)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h, _, err := v1.SHA256(rc)
		rc.Close()
		if want, _ := l.Digest(); err != nil || h != want {
			t.Fatalf("layer bytes hash to %s, want %s", h, want)
		}
	}
}
