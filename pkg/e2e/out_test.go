package e2e

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

func TestOutPushesAnArchiveUnderEveryTag(t *testing.T) {
	for kind, reg := range registries(t) {
		t.Run(kind, func(t *testing.T) {
			img := testharness.MultiLayerImage(t, 2, 1<<18)
			want, _ := img.Digest()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "build/readme"), "the archive sits beside this")
			testharness.SaveOCIArchive(t, img, filepath.Join(dir, "build/image.tar"), "")
			writeFile(t, filepath.Join(dir, "version/tag"), "1.4.0\n")
			writeFile(t, filepath.Join(dir, "version/more"), "stable edge\n")

			resp := put(t, dir, source(reg, "app"), map[string]any{
				"image": "build/*.tar", "tag_file": "version/tag", "tag_prefix": "v", "tag_as_latest": true, "additional_tags": "version/more",
			})
			if resp.Version != (api.Version{Digest: want.String(), Tag: "v1.4.0"}) {
				t.Fatalf("version %+v, want digest %s tag v1.4.0", resp.Version, want)
			}
			for _, tag := range []string{"v1.4.0", "latest", "stable", "edge"} {
				if got := reg.Digest(t, reg.Ref("app:"+tag)); got != want {
					t.Errorf("%s points to %s, want %s", tag, got, want)
				}
			}

			// The same image again: every blob is already there, nothing is uploaded.
			reg.ResetRequests()
			put(t, dir, source(reg, "app"), map[string]any{"image": "build/image.tar"})
			if n, bytes := reg.BlobUploads(); n != 0 {
				t.Errorf("second push uploaded %d blobs (%d bytes), want none", n, bytes)
			}
		})
	}
}

func TestOutManifestComesAfterBlobsAndTagsLast(t *testing.T) {
	reg := testharness.StartInProcess(t)
	dir := t.TempDir()
	testharness.SaveOCIArchive(t, testharness.MultiLayerImage(t, 2, 1<<16), filepath.Join(dir, "image.tar"), "")
	reg.ResetRequests()
	put(t, dir, source(reg, "app"), map[string]any{"image": "image.tar", "tag_as_latest": true})
	var order []string
	for _, r := range reg.Requests() {
		switch {
		case r.Method == "PUT" && strings.Contains(r.Path, "/blobs/"), r.Method == "PATCH" && strings.Contains(r.Path, "/blobs/"):
			order = append(order, "blob")
		case r.Method == "PUT" && strings.Contains(r.Path, "/manifests/sha256:"):
			order = append(order, "manifest")
		case r.Method == "PUT" && strings.Contains(r.Path, "/manifests/"):
			order = append(order, "tag")
		}
	}
	joined := strings.Join(order, ",")
	if !strings.HasPrefix(joined, "blob") || !strings.HasSuffix(joined, "manifest,tag") || strings.Contains(joined, "manifest,blob") {
		t.Fatalf("write order %s: want blobs, then the manifest by digest, then tags", joined)
	}
}

func TestOutLoadsWhatGetsSaved(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := testharness.MultiLayerImage(t, 1, 1<<18)
	digest := reg.Push(t, reg.Ref("team/base:1"), img)
	version := api.Version{Digest: digest.String(), Tag: "1"}

	// docker-image-resource's save: true directory, pushed with load into another repository of the
	// same registry: a docker archive has its own manifest format, but the config and the layers
	// are the same bytes, mounted rather than uploaded.
	saved, _ := get(t, source(reg, "team/base", "tag", "1"), version, map[string]any{"save": true, "format": "rootfs"})
	reg.ResetRequests()
	put(t, filepath.Dir(saved), source(reg, "team/copy"), map[string]any{"load": filepath.Base(saved)})
	assertSameContent(t, img, reg.Image(t, reg.Ref("team/copy:latest")))
	if _, n := reg.BlobUploads(); n != 0 {
		t.Errorf("uploaded %d bytes; layers of the same registry should be mounted", n)
	}

	// load_file with load_repository and load_tag picks the image in a docker archive.
	dir := t.TempDir()
	testharness.SaveDockerArchive(t, img, filepath.Join(dir, "saved.tar"), "example.com/picked:7")
	put(t, dir, source(reg, "team/picked"), map[string]any{"load_file": "saved.tar", "load_repository": "example.com/picked", "load_tag": "7"})
	assertSameContent(t, img, reg.Image(t, reg.Ref("team/picked:latest")))
}

// assertSameContent: the same config and the same compressed layers, whatever the manifest format.
func assertSameContent(t *testing.T, want, got v1.Image) {
	t.Helper()
	wantConfig, _ := want.ConfigName()
	if gotConfig, err := got.ConfigName(); err != nil || gotConfig != wantConfig {
		t.Errorf("config %s (%v), want %s", gotConfig, err, wantConfig)
	}
	wantLayers, _ := want.Layers()
	gotLayers, err := got.Layers()
	if err != nil || len(gotLayers) != len(wantLayers) {
		t.Fatalf("%d layers (%v), want %d", len(gotLayers), err, len(wantLayers))
	}
	for i := range wantLayers {
		w, _ := wantLayers[i].Digest()
		if g, _ := gotLayers[i].Digest(); g != w {
			t.Errorf("layer %d is %s, want %s", i, g, w)
		}
	}
}

func TestOutImportsARootfsTarball(t *testing.T) {
	reg := testharness.StartInProcess(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	writeFile(t, filepath.Join(dir, "rootfs.tar"), buf.String())
	put(t, dir, source(reg, "imported"), map[string]any{"import_file": "rootfs.tar"})
	img := reg.Image(t, reg.Ref("imported:latest"))
	out := t.TempDir()
	if err := imagefile.WriteRootfs(out, img); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(out, "rootfs/etc/motd")); got != "hello" {
		t.Fatalf("/etc/motd = %q", got)
	}
}
