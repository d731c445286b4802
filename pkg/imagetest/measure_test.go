package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// measureEnv opts in to TestMeasureStorage.
const measureEnv = "IMAGETEST_MEASURE"

// TestMeasureStorage times, in the resource container, the same 4-step put on a Debian-sized base
// (busybox and ~48 MB in ~4000 files) with each storage placement: vfs in the container's /tmp
// (what every put did before), overlay in the work dir, overlay on a tmpfs. It logs the times and
// asserts none of them. Set IMAGETEST_MEASURE=1 (and -v) to run it.
func TestMeasureStorage(t *testing.T) {
	if os.Getenv(measureEnv) != "1" {
		t.Skipf("set %s=1 to time puts with each storage placement", measureEnv)
	}
	image := buildResourceImage(t)
	reg := testharness.StartInProcess(t)
	base := debianSizedImage(t)
	version := api.Version{Digest: reg.Push(t, reg.Ref("base:1"), base).String(), Tag: "1"}
	work := t.TempDir()
	get(t, image, filepath.Join(work, "base"), source(reg, "base", "tag", "1"), version)
	dockerfile := "FROM " + reg.Ref("base:1") + "\n" +
		"RUN echo one > /one.txt\n" +
		"COPY ctx/hello.txt /hello.txt\n" +
		"RUN echo two > /two.txt\n" +
		"RUN ls -R /usr/share | wc -l > /count.txt\n"
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), dockerfile)
	writeFile(t, filepath.Join(work, "ctx/ctx/hello.txt"), "hello\n")
	writeFile(t, filepath.Join(work, "whole.Dockerfile"), dockerfile)
	writeFile(t, filepath.Join(work, "ctx/hello.txt"), "hello\n")

	builtIn := regexp.MustCompile(`(?m)^built in ([0-9.]+)s`)
	for _, mode := range []struct {
		name   string
		params map[string]any
	}{
		{"vfs in /tmp", map[string]any{"build": "ctx", "storage_driver": "vfs"}},
		{"overlay in the work dir", map[string]any{"build": "ctx"}},
		{"overlay on a tmpfs", map[string]any{"build": ".", "dockerfile": "whole.Dockerfile"}},
	} {
		for i := range 3 {
			params := map[string]any{"load_base": "base", "no_cache": true}
			for k, v := range mode.params {
				params[k] = v
			}
			start := time.Now()
			_, log := put(t, image, work, source(reg, fmt.Sprintf("measure-%d", i)), params)
			built := "?"
			if m := builtIn.FindStringSubmatch(log); m != nil {
				built = m[1]
			}
			t.Logf("MEASURE %-24s run %d: build %ss, put %.1fs", mode.name, i+1, built, time.Since(start).Seconds())
		}
	}
}

// debianSizedImage is busybox plus a layer the size of a Debian minbase: ~48 MB of text-like
// files, ~4000 of them in ~40 directories.
func debianSizedImage(t *testing.T) v1.Image {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"the ", "package ", "debian ", "library ", "usr ", "share ", "doc ", "copyright\n", "license ", "GNU "}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 4000 {
		if i%100 == 0 {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/d%d/", i/100), Mode: 0o755, Typeflag: tar.TypeDir})
		}
		var data bytes.Buffer
		for data.Len() < 12000 {
			data.WriteString(words[rng.IntN(len(words))])
		}
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/share/d%d/f%d.txt", i/100, i), Mode: 0o644, Size: int64(data.Len()), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(testharness.BusyboxImage(t), layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
