package build

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containers/storage"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

func TestMain(m *testing.M) {
	if Reexec() {
		return
	}
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// file is an entry of a generated layer.
type file struct {
	name, link string // link != "": a symlink
	data       []byte
	mode       int64
}

// busyboxImage is a base image made from the host's busybox-static: one
// layer with /bin/busybox and a symlink per applet, PATH and Cmd sh.
func busyboxImage(t testing.TB, extra ...file) v1.Image {
	t.Helper()
	testharness.RequireFile(t, testharness.BusyboxPath, "busybox-static")
	bin, err := os.ReadFile(testharness.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	files := []file{{name: "bin/busybox", data: bin, mode: 0o755}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			files = append(files, file{name: "bin/" + applet, link: "busybox"})
		}
	}
	files = append(files, file{name: "tmp/", mode: 0o1777}, file{name: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\n"), mode: 0o644})
	img := imageWithLayers(t, layerOf(t, files...))
	if len(extra) > 0 {
		img = appendLayer(t, img, layerOf(t, extra...))
	}
	img, err = mutate.Config(img, v1.Config{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"sh"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageWithLayers(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = runtime.GOOS, runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		img = appendLayer(t, img, l)
	}
	return img
}

func appendLayer(t testing.TB, img v1.Image, l v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "test layer"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layerOf makes a gzip OCI layer of files.
func layerOf(t testing.TB, files ...file) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		switch {
		case f.link != "":
			h = &tar.Header{Name: f.name, Linkname: f.link, Mode: 0o777, Typeflag: tar.TypeSymlink}
		case strings.HasSuffix(f.name, "/"):
			h = &tar.Header{Name: f.name, Mode: f.mode, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// saveOCILayout writes images into an OCI layout directory and returns
// the images as read back from it (compressed layers as saved).
func saveOCILayout(t testing.TB, dir string, imgs ...v1.Image) []v1.Image {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var saved []v1.Image
	for _, img := range imgs {
		if err := p.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Image(d)
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, s)
	}
	return saved
}

// saveOCIArchive writes img as an OCI archive (a tar of the OCI layout it
// writes in dir) and returns the image as read from the layout.
func saveOCIArchive(t testing.TB, path, dir string, img v1.Image) v1.Image {
	t.Helper()
	saved := saveOCILayout(t, dir, img)[0]
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(dir, p)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return saved
}

// saveDockerArchive writes img as a docker-archive tagged tag.
func saveDockerArchive(t testing.TB, path, tag string, img v1.Image) {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
}

// imageFiles returns the regular files of img's flattened filesystem.
func imageFiles(t testing.TB, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.TrimPrefix(h.Name, "/")] = string(data)
		}
	}
}

// openStore opens a storage under dir as a build with no work dir does: overlay falling back to
// vfs (or driver), on a tmpfs when dir is on an overlayfs.
func openStore(dir, driver string, log *logrus.Logger) (storage.Store, error) {
	opened, err := openStorage(dir, Options{StorageDriver: driver, Log: log}, hostProbe())
	if err != nil {
		return nil, err
	}
	return opened.store, nil
}

// parsed is opts with the model of its Dockerfile, read as the resource reads it.
func parsed(t testing.TB, opts Options) Options {
	t.Helper()
	data, err := os.ReadFile(opts.Dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dockerfile.Parse(data, dockerfile.Args{BuildArgs: opts.BuildArgs, Target: opts.Target, Platform: opts.Platform})
	if err != nil {
		t.Fatal(err)
	}
	opts.Model = m
	return opts
}

// model is the model of a Dockerfile's text for a build without args.
func model(t testing.TB, text string) *dockerfile.Model {
	t.Helper()
	m, err := dockerfile.Parse([]byte(text), dockerfile.Args{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
