package e2e

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

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// The images and helpers the peers' test suites are ported with (peers_test.go): what their
// fixtures held (concourse/test-image-* on Docker Hub, tests/fixtures), made locally.

// birthday is the mtime registry-image-resource's file-perms-mtime image gives its file.
var birthday = time.Date(1991, 6, 3, 5, 30, 30, 0, time.UTC)

// withConfig returns img with its config changed by edit: distinct configs give distinct digests
// over the same layers, so many tags cost one layer upload.
func withConfig(t *testing.T, img v1.Image, edit func(*v1.Config)) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	c.Labels = map[string]string{}
	for k, v := range cfg.Config.Labels {
		c.Labels[k] = v
	}
	edit(&c)
	out, err := mutate.Config(img, c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// labelled is busybox with one label: an image of its own per value.
func labelled(t *testing.T, value string) v1.Image {
	return withConfig(t, testharness.BusyboxImage(t), func(c *v1.Config) { c.Labels["peer.test"] = value })
}

// metadataImage is test-image-metadata and test-image-entrypoint in one: a user, env, entrypoint
// and cmd, two labels and two manifest annotations (one of each matching ^com\.example\.).
func metadataImage(t *testing.T) v1.Image {
	img := withConfig(t, testharness.BusyboxImage(t), func(c *v1.Config) {
		c.User = "someuser"
		c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FOO=1"}
		c.Entrypoint = []string{"/bin/sh"}
		c.Cmd = []string{"-c", "echo hello world"}
		c.Labels = map[string]string{"com.example.foo": "bar", "org.other.baz": "skip"}
	})
	annotated, ok := mutate.Annotations(img, map[string]string{"com.example.build": "123", "org.internal": "skip"}).(v1.Image)
	if !ok {
		t.Fatal("annotations: not an image")
	}
	return annotated
}

// filesystemImage holds, over busybox, what registry-image-resource's file-perms-mtime, whiteout,
// removed-hardlinks and symlinks images test: a 0603 file owned 1000:1000 with a 1991 mtime;
// files, directories and a hard link's target removed by whiteouts of a later layer; a symlink
// the later layer replaces with a regular file.
func filesystemImage(t *testing.T) v1.Image {
	owned := func(e testharness.Entry) testharness.Entry {
		e.Uid, e.Gid, e.ModTime = 1000, 1000, birthday
		return e
	}
	lower := testharness.WithLayer(t, testharness.BusyboxImage(t),
		directory("home/", 0o755), directory("home/alex/", 0o755), owned(regular("home/alex/birthday", "cake\n", 0o603)),
		directory("top-dir-1/", 0o755), regular("top-dir-1/nested-file", "x", 0o644),
		directory("top-dir-1/nested-dir/", 0o755), regular("top-dir-1/nested-dir/file-gone", "x", 0o644),
		regular("top-dir-1/nested-dir/file-here", "x", 0o644), regular("top-dir-1/nested-dir/file-then-dir", "x", 0o644),
		directory("top-dir-2/", 0o755), regular("top-dir-2/file", "x", 0o644),
		directory("hardlink-test/", 0o755), regular("hardlink-test/orig", "linked\n", 0o644),
		testharness.Entry{Header: tar.Header{Name: "hardlink-test/hardlink-file", Typeflag: tar.TypeLink, Linkname: "hardlink-test/orig"}},
		regular("a", "symlinked\n", 0o644), sym("b", "a"),
	)
	return testharness.WithLayer(t, lower,
		regular("top-dir-1/nested-dir/.wh.file-gone", "", 0o644),
		regular("top-dir-1/nested-dir/.wh.file-then-dir", "", 0o644), directory("top-dir-1/nested-dir/file-then-dir/", 0o755),
		regular(".wh.top-dir-2", "", 0o644),
		regular("hardlink-test/.wh.orig", "", 0o644),
		regular("b", "replaced\n", 0o644),
	)
}

// tarFiles reads a tar file: each entry's header by name ("./" and trailing "/" dropped), and
// the content of regular files.
func tarFiles(t *testing.T, path string) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	headers, contents := map[string]*tar.Header{}, map[string]string{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return headers, contents
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		headers[name] = hdr
		if hdr.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			contents[name] = string(data)
		}
	}
}

// jsonFile decodes a JSON file of a get.
func jsonFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// exists reports whether the get wrote name.
func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

// tagsOf lists the tags of repo that point to digest.
func tagsOf(t *testing.T, reg *testharness.Registry, repo string, digest v1.Hash, candidates ...string) []string {
	t.Helper()
	var out []string
	for _, tag := range candidates {
		if versions := check(t, source(reg, repo, "tag", tag), nil); len(versions) == 1 && versions[0].Digest == digest.String() {
			out = append(out, tag)
		}
	}
	return out
}

// versionTags are the tags of check's answer, in order.
func versionTags(versions []api.Version) []string {
	out := []string{}
	for _, v := range versions {
		out = append(out, v.Tag)
	}
	return out
}

// failure runs a step that must fail and returns its last log line (the error).
func failure(t *testing.T, bin string, request map[string]any, dir string, env ...string) string {
	t.Helper()
	res := testharness.Run(t, bin, request, dir, env...)
	if res.ExitCode == 0 {
		t.Fatalf("%s succeeded, want an error; stdout %s", bin, res.Stdout)
	}
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	return lines[len(lines)-1]
}

// zstdImage is busybox plus a zstd-compressed layer holding /zstd.txt (registry-image-resource's
// test-image-static:zstd).
func zstdImage(t *testing.T) v1.Image {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "decompressed from zstd\n"
	if err := tw.WriteHeader(&tar.Header{Name: "zstd.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: birthday}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(testharness.BusyboxImage(t), layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
