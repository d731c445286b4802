package testharness

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBusyboxImage(t *testing.T) {
	img := BusyboxImage(t)
	checkImage(t, img)
	if first, again := digest(t, img), digest(t, BusyboxImage(t)); first != again {
		t.Errorf("digest differs between calls: %s, %s", first, again)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if strings.Join(cfg.Config.Cmd, " ") != "sh" || len(cfg.Config.Env) != 1 || !strings.HasPrefix(cfg.Config.Env[0], "PATH=") {
		t.Errorf("config Cmd %q Env %q", cfg.Config.Cmd, cfg.Config.Env)
	}
	if len(cfg.History) != 1 {
		t.Errorf("history %+v, want one entry", cfg.History)
	}

	files := filesystem(t, img)
	busybox, err := os.Stat(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	checkEntry(t, files, "bin/busybox", tar.TypeReg, 0o755, busybox.Size())
	checkEntry(t, files, "tmp", tar.TypeDir, 0o1777, 0)
	checkEntry(t, files, "root", tar.TypeDir, 0o700, 0)
	checkEntry(t, files, "etc/passwd", tar.TypeReg, 0o644, -1)
	for _, applet := range []string{"sh", "ls", "grep", "sed", "tar", "dd"} {
		if h := files["bin/"+applet]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s: %+v, want a symlink to busybox", applet, h)
		}
	}
}

func TestMultiLayerImage(t *testing.T) {
	img := MultiLayerImage(t, 2, 1000)
	checkImage(t, img)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 3 {
		t.Fatalf("%d layers, want busybox + 2", len(layers))
	}
	if digest(t, img) != digest(t, MultiLayerImage(t, 2, 1000)) {
		t.Error("digest differs between calls")
	}
	files := filesystem(t, img)
	checkEntry(t, files, "data/layer-1.bin", tar.TypeReg, 0o644, 1000)
	checkEntry(t, files, "data/layer-2.bin", tar.TypeReg, 0o644, 1000)
	checkEntry(t, files, "bin/busybox", tar.TypeReg, 0o755, -1)
}

func TestTwoPlatformIndex(t *testing.T) {
	idx := TwoPlatformIndex(t)
	checkIndex(t, idx)
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest.MediaType != types.OCIImageIndex || len(manifest.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", manifest.MediaType, len(manifest.Manifests))
	}
	for _, desc := range manifest.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		platform := desc.Platform.OS + "/" + desc.Platform.Architecture
		if cfg.OS+"/"+cfg.Architecture != platform {
			t.Errorf("descriptor says %s, config says %s/%s", platform, cfg.OS, cfg.Architecture)
		}
		if got := fileContent(t, img, "platform"); got != platform+"\n" {
			t.Errorf("/platform of %s is %q", platform, got)
		}
	}
}

func TestSaveOCIArchive(t *testing.T) {
	img := BusyboxImage(t)
	archive := filepath.Join(t.TempDir(), "image.tar")
	SaveOCIArchive(t, img, archive, "example/busybox:1.0")

	dir := t.TempDir()
	untar(t, archive, dir)
	for _, name := range []string{"oci-layout", "index.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("archive lacks %s: %v", name, err)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(manifest.Manifests))
	}
	desc := manifest.Manifests[0]
	if desc.Annotations[RefNameAnnotation] != "example/busybox:1.0" {
		t.Errorf("annotations %v, want the ref name", desc.Annotations)
	}
	if desc.Digest != digest(t, img) {
		t.Errorf("archived digest %s, want %s", desc.Digest, digest(t, img))
	}
	saved, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, saved)
}

func TestSaveDockerArchive(t *testing.T) {
	img := MultiLayerImage(t, 1, 100)
	archive := filepath.Join(t.TempDir(), "image.tar")
	SaveDockerArchive(t, img, archive, "example.com/app:1.0")

	tag, err := name.NewTag("example.com/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatalf("loading docker archive: %v", err)
	}
	checkImage(t, loaded)
	want, _ := img.ConfigName()
	if got, _ := loaded.ConfigName(); got != want {
		t.Errorf("config digest %s, want %s", got, want)
	}
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// filesystem returns the headers of the image's flattened filesystem.
func filesystem(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading image filesystem: %v", err)
		}
		files[h.Name] = h
	}
}

// checkEntry checks an entry's type, mode and (unless size < 0) size.
func checkEntry(t *testing.T, files map[string]*tar.Header, name string, typ byte, mode, size int64) {
	t.Helper()
	h := files[name]
	switch {
	case h == nil:
		t.Errorf("%s missing", name)
	case h.Typeflag != typ || h.Mode != mode || (size >= 0 && h.Size != size):
		t.Errorf("%s: type %c mode %o size %d, want type %c mode %o size %d", name, h.Typeflag, h.Mode, h.Size, typ, mode, size)
	}
}

func fileContent(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("looking for %s: %v", path, err)
		}
		if h.Name == path {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
