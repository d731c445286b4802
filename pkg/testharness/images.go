package testharness

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where the static busybox binary copied into BusyboxImage
// comes from (Debian's busybox-static package).
const BusyboxPath = "/usr/bin/busybox"

// RefNameAnnotation is the OCI annotation naming an image in an OCI layout.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// fixedTime is the timestamp of every file, history entry and config, so
// that the generated images have the same digest on every run.
func fixedTime() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// BusyboxImage returns a one-layer OCI image holding a static busybox with
// symlinks for the common applets, /etc/passwd with root, and /tmp, /root,
// /etc. Its config has PATH, Cmd ["sh"], OS linux and the host architecture.
// The digest is the same on every run on the same host.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	RequireFile(t, BusyboxPath, "busybox-static")
	img, err := Busybox(runtime.GOARCH)
	if err != nil {
		t.Fatalf("building busybox image: %v", err)
	}
	return img
}

// MultiLayerImage returns BusyboxImage plus `layers` layers; layer i (from 1)
// holds /data/layer-<i>.bin with layerSize pseudo-random bytes from a seed
// derived from i, so the content (and the digest) is the same on every run
// and does not compress.
func MultiLayerImage(t testing.TB, layers int, layerSize int64) v1.Image {
	t.Helper()
	img := BusyboxImage(t)
	for i := 1; i <= layers; i++ {
		data := make([]byte, layerSize)
		var seed [32]byte
		seed[0], seed[1] = byte(i), byte(i>>8)
		if _, err := rand.NewChaCha8(seed).Read(data); err != nil {
			t.Fatalf("generating data for layer %d: %v", i, err)
		}
		var err error
		img, err = appendLayer(img, fmt.Sprintf("testharness: data layer %d", i), []tarEntry{
			dir("data/", 0o755),
			file(fmt.Sprintf("data/layer-%d.bin", i), 0o644, data),
		})
		if err != nil {
			t.Fatalf("adding data layer %d: %v", i, err)
		}
	}
	return img
}

// TwoPlatformIndex returns an OCI index of a linux/amd64 and a linux/arm64
// image. Both are BusyboxImage (same host busybox binary) plus a layer with
// /platform holding "linux/<arch>\n", and a config naming their platform.
func TwoPlatformIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	RequireFile(t, BusyboxPath, "busybox-static")
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := Busybox(arch)
		if err != nil {
			t.Fatalf("building %s image: %v", arch, err)
		}
		platform := "linux/" + arch
		img, err = appendLayer(img, "testharness: platform file", []tarEntry{
			file("platform", 0o644, []byte(platform+"\n")),
		})
		if err != nil {
			t.Fatalf("adding platform layer for %s: %v", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				MediaType: types.OCIManifestSchema1,
				Platform:  &v1.Platform{OS: "linux", Architecture: arch},
			},
		})
	}
	return idx
}

// SaveOCIArchive writes img as an OCI layout in a tar file at path (no
// compression): oci-layout, index.json naming the image refName through the
// org.opencontainers.image.ref.name annotation, and blobs/sha256/*.
func SaveOCIArchive(t testing.TB, img v1.Image, path, refName string) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatalf("creating OCI layout: %v", err)
	}
	err = p.AppendImage(img, layout.WithAnnotations(map[string]string{RefNameAnnotation: refName}))
	if err != nil {
		t.Fatalf("writing image to OCI layout: %v", err)
	}
	if err := tarDirectory(dir, path); err != nil {
		t.Fatalf("writing OCI archive %s: %v", path, err)
	}
}

// SaveDockerArchive writes img as a `docker save` tarball at path, tagged
// repoTag (for example "example.com/app:1.0").
func SaveDockerArchive(t testing.TB, img v1.Image, path, repoTag string) {
	t.Helper()
	tag, err := name.NewTag(repoTag)
	if err != nil {
		t.Fatalf("parsing tag %q: %v", repoTag, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatalf("writing docker archive %s: %v", path, err)
	}
}

// ForeignBusyboxDir holds static busybox binaries of other architectures, <dir>/<arch>/busybox:
// .ci/setup extracts them from Debian's busybox-static:<arch> packages.
const ForeignBusyboxDir = "/usr/local/lib/busybox-static"

// BusyboxPathFor is the static busybox binary of arch (a GOARCH name): BusyboxPath on the host's
// architecture, else below ForeignBusyboxDir.
func BusyboxPathFor(arch string) string {
	if arch == runtime.GOARCH {
		return BusyboxPath
	}
	return filepath.Join(ForeignBusyboxDir, arch, "busybox")
}

// BusyboxImageFor is BusyboxImage for arch with that architecture's own busybox binary, so its
// programs really run as arch (under QEMU on another machine). It skips the test when the binary
// is missing, or fails it under CI=true.
func BusyboxImageFor(t testing.TB, arch string) v1.Image {
	t.Helper()
	RequireFile(t, BusyboxPathFor(arch), "busybox-static:"+arch)
	img, err := BusyboxFor(arch)
	if err != nil {
		t.Fatalf("building %s busybox image: %v", arch, err)
	}
	return img
}

// BusyboxFor is BusyboxImageFor for programs such as the benchmarks: it returns an error.
func BusyboxFor(arch string) (v1.Image, error) {
	path := BusyboxPathFor(arch)
	busybox, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s (Debian's busybox-static:%s; see .ci/setup): %w", path, arch, err)
	}
	return busyboxImage(busybox, arch)
}

// RequireEmulation skips the test when QEMU's static interpreter for arch (a QEMU name such as
// aarch64) is missing, or fails it under CI=true.
func RequireEmulation(t testing.TB, qemuArch string) {
	t.Helper()
	RequireCommand(t, "qemu-"+qemuArch+"-static", "qemu-user-static")
}

// Busybox is BusyboxImage for programs such as the demo: it returns an error instead of failing a test.
func Busybox(arch string) (v1.Image, error) {
	busybox, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (install busybox-static): %w", err)
	}
	return busyboxImage(busybox, arch)
}

// busyboxImage is the busybox image around the binary, its config naming arch.
func busyboxImage(busybox []byte, arch string) (v1.Image, error) {
	entries := []tarEntry{
		dir("bin/", 0o755),
		file("bin/busybox", 0o755, busybox),
	}
	applets := []string{"sh", "ls", "cat", "echo", "touch", "mkdir", "rm", "cp", "mv", "date",
		"head", "tr", "wc", "sleep", "env", "test", "true", "false", "grep", "sed", "tar", "dd", "wget"}
	for _, applet := range applets {
		entries = append(entries, symlink("bin/"+applet, "busybox"))
	}
	entries = append(entries,
		dir("etc/", 0o755),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")),
		file("etc/group", 0o644, []byte("root:x:0:\n")),
		dir("root/", 0o700),
		dir("tmp/", 0o1777),
	)

	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := appendLayer(base, "testharness: busybox", entries)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: fixedTime()}
	cfg.OS = "linux"
	cfg.Architecture = arch
	cfg.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}

// appendLayer adds a gzipped OCI layer made of entries, with a history entry.
func appendLayer(img v1.Image, createdBy string, entries []tarEntry) (v1.Image, error) {
	return appendLayerAs(img, createdBy, entries, true)
}

// appendLayerAs is appendLayer; with normalize, entries get root's names and fixed times.
func appendLayerAs(img v1.Image, createdBy string, entries []tarEntry, normalize bool) (v1.Image, error) {
	tarBytes, err := buildTar(entries, normalize)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.BestSpeed),
		tarball.WithCompressedCaching,
	)
	if err != nil {
		return nil, fmt.Errorf("creating layer: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: fixedTime()}, CreatedBy: createdBy},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	return img, nil
}

type tarEntry struct {
	header tar.Header
	body   []byte
}

func dir(name string, mode int64) tarEntry {
	return tarEntry{header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func file(name string, mode int64, body []byte) tarEntry {
	return tarEntry{header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

func symlink(name, target string) tarEntry {
	return tarEntry{header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

// buildTar writes entries; with normalize, owned by root with fixed mtimes.
func buildTar(entries []tarEntry, normalize bool) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.header
		if normalize {
			hdr.ModTime = fixedTime()
			hdr.Uname, hdr.Gname = "root", "root"
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("writing tar header for %s: %w", hdr.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("writing tar content of %s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	return buf.Bytes(), nil
}

// tarDirectory writes the tree under dir (not dir itself) to a tar file,
// with fixed modes and mtimes.
func tarDirectory(dir, path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer out.Close()
	tw := tar.NewWriter(out)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.ModTime, hdr.Mode = fixedTime(), 0o644
		if d.IsDir() {
			hdr.Name, hdr.Mode = hdr.Name+"/", 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}
