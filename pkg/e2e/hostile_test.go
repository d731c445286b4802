package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/cachemount"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// outsideDir is a directory outside every volume, with one file; untouched fails the test if
// anything in it changed (an entry added or removed, a mode changed).
func outsideDir(t *testing.T) (string, func(*testing.T)) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keep"), "keep")
	os.Chmod(dir, 0o750)
	return dir, func(t *testing.T) {
		t.Helper()
		entries, _ := os.ReadDir(dir)
		info, _ := os.Stat(dir)
		if len(entries) != 1 || info.Mode().Perm() != 0o750 {
			names := []string{}
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("the directory outside changed: %v, mode %v", names, info.Mode())
		}
	}
}

func sym(name, target string) testharness.Entry {
	return testharness.Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func regular(name, body string, mode int64) testharness.Entry {
	return testharness.Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, Body: body}
}

func directory(name string, mode int64) testharness.Entry {
	return testharness.Entry{Header: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}

func rootfsGets() map[string]map[string]any {
	return map[string]map[string]any{"format rootfs": {"format": "rootfs"}, "rootfs true": {"rootfs": true}}
}

// TestGetRootfsNeverLeavesTheVolume: a layer with a symlink to a directory outside, then an
// entry through it (with a leading slash), fails the get and writes nothing outside; a directory
// entry named like a symlink to the outside replaces the symlink and chmods nothing outside.
func TestGetRootfsNeverLeavesTheVolume(t *testing.T) {
	reg := testharness.StartInProcess(t)
	outside, untouched := outsideDir(t)
	through := reg.Push(t, reg.Ref("evil:through"), testharness.WithLayer(t, testharness.BusyboxImage(t),
		sym("e", outside), regular("/e/new/file", "pwned", 0o644)))
	chmod := reg.Push(t, reg.Ref("evil:chmod"), testharness.WithLayer(t, testharness.BusyboxImage(t),
		sym("s", outside), directory("s", 0o777)))
	for name, params := range rootfsGets() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			res := testharness.Run(t, "in", map[string]any{"source": source(reg, "evil"), "version": map[string]string{"digest": through.String()}, "params": params}, dir)
			if res.ExitCode == 0 || !strings.Contains(res.Stderr, "e/new/file") || strings.Count(res.Stderr, "ERROR: ") != 1 {
				t.Fatalf("exit %d: want a one-line refusal naming e/new/file", res.ExitCode)
			}
			untouched(t)
			if _, err := os.Stat(filepath.Join(dir, "rootfs")); !os.IsNotExist(err) {
				t.Fatalf("a failed get left rootfs/ (%v)", err)
			}

			dir = t.TempDir()
			res = testharness.Run(t, "in", map[string]any{"source": source(reg, "evil"), "version": map[string]string{"digest": chmod.String()}, "params": params}, dir)
			untouched(t)
			if res.ExitCode != 0 {
				t.Fatalf("exit %d", res.ExitCode)
			}
			if info, err := os.Lstat(filepath.Join(dir, "rootfs/s")); err != nil || !info.IsDir() {
				t.Fatalf("rootfs/s: want a directory, got %v %v", info, err)
			}
		})
	}
}

// TestGetRefusesBytesThatAreNotTheDigest: a registry (or proxy) serving a layer with one byte
// flipped, or another valid layer in its place, fails every format of the get, and no file of
// it appears in the volume.
func TestGetRefusesBytesThatAreNotTheDigest(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := testharness.WithLayer(t, testharness.BusyboxImage(t), regular("legit", strings.Repeat("legit\n", 2000), 0o644))
	digest := reg.Push(t, reg.Ref("app:1"), img)
	layer := lastLayer(t, img)
	attacker := lastLayer(t, testharness.WithLayer(t, testharness.BusyboxImage(t), regular("attacker", "attacker", 0o644)))
	for how, change := range map[string]func([]byte) []byte{
		"one byte flipped": func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b },
		"other bytes":      func([]byte) []byte { return blobBytes(t, attacker) },
	} {
		hostile := reg.WithTamper(t, func(path string, body []byte) []byte {
			if strings.HasSuffix(path, "/blobs/"+digestOf(t, layer).String()) {
				return change(body)
			}
			return body
		})
		for format, params := range map[string]map[string]any{
			"format oci": {"format": "oci"}, "format oci-layout": {"format": "oci-layout"}, "format rootfs": {"format": "rootfs"},
			"rootfs true": {"rootfs": true}, "save true": {"save": true},
		} {
			t.Run(how+"/"+format, func(t *testing.T) {
				dir := t.TempDir()
				res := testharness.Run(t, "in", map[string]any{"source": source(hostile, "app"), "version": map[string]string{"digest": digest.String()}, "params": params}, dir)
				if res.ExitCode == 0 {
					t.Fatal("the get succeeded with bytes that are not the layer")
				}
				for _, f := range []string{"rootfs", "image.tar", "oci", "image"} {
					if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
						t.Errorf("%s is in the volume after a failed get", f)
					}
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a failed get left %v in the volume", entries)
				}
			})
		}
	}
}

// TestGetRootfsKeepsWhatTaskImagesNeed: a layer starting with "./" (tar -C dir -c .), owners,
// setuid and sticky bits come through a rootfs get unchanged (the get runs as root).
func TestGetRootfsKeepsWhatTaskImagesNeed(t *testing.T) {
	testharness.RequireRoot(t, "keeping owners")
	reg := testharness.StartInProcess(t)
	owned := regular("./home/app/data", "mine", 0o640)
	owned.Uid, owned.Gid = 1000, 1001
	img := testharness.WithLayer(t, testharness.BusyboxImage(t), directory("./", 0o755), directory("./tmp/", 0o1777),
		directory("./home/", 0o755), directory("./home/app/", 0o755), owned, regular("./usr/bin/helper", "#!/bin/sh\n", 0o4755))
	digest := reg.Push(t, reg.Ref("task:1"), img)
	for name, params := range rootfsGets() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			res := testharness.Run(t, "in", map[string]any{"source": source(reg, "task"), "version": map[string]string{"digest": digest.String()}, "params": params}, dir)
			if res.ExitCode != 0 {
				t.Fatalf("exit %d", res.ExitCode)
			}
			for path, want := range map[string]uint32{"tmp": 0o1777, "usr/bin/helper": 0o4755, "home/app/data": 0o640} {
				var st syscall.Stat_t
				if err := syscall.Lstat(filepath.Join(dir, "rootfs", path), &st); err != nil || st.Mode&0o7777 != want {
					t.Errorf("%s: mode %o, want %o (%v)", path, st.Mode&0o7777, want, err)
				}
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(dir, "rootfs/home/app/data"), &st); err != nil || st.Uid != 1000 || st.Gid != 1001 {
				t.Errorf("home/app/data: owner %d:%d, want 1000:1001 (%v)", st.Uid, st.Gid, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "rootfs/bin/busybox")); err != nil {
				t.Errorf("the base's files are missing: %v", err)
			}
		})
	}
}

// TestCacheMountRestoreIsHostileProof: a cache mount image in cache_repo whose layer escapes
// through a symlink, or whose blob is served as other bytes, is not restored: a warning, the
// build goes on with an empty mount, nothing outside changes and the RUN sees no attacker file.
func TestCacheMountRestoreIsHostileProof(t *testing.T) {
	reg := testharness.StartInProcess(t)
	outside, untouched := outsideDir(t)
	baseDigest := reg.Push(t, reg.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1", baseDigest, filepath.Join(work, "base"), nil)
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\n"+
		"RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs sh -c 'ls -A /var/cache/pkgs > /listing; echo done >> /listing'\n")
	mountImage := func(entries ...testharness.Entry) v1.Image {
		img := testharness.WithLayer(t, mutate.MediaType(empty.Image, types.OCIManifestSchema1), entries...)
		cfg, _ := img.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.Config.Labels = map[string]string{cachemount.IDLabel: "pkgs"}
		img, err := mutate.ConfigFile(img, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	legit := mountImage(regular("legit", "legit", 0o644))
	attacker := lastLayer(t, mountImage(regular("attacker", "attacker", 0o644)))
	cases := map[string]struct {
		image  v1.Image
		tamper testharness.Tamper
	}{
		"escape through a symlink": {image: mountImage(sym("e", outside), regular("/e/new/file", "pwned", 0o644))},
		"other bytes served": {image: legit, tamper: func(path string, body []byte) []byte {
			if strings.HasSuffix(path, "/blobs/"+digestOf(t, lastLayer(t, legit)).String()) {
				return blobBytes(t, attacker)
			}
			return body
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			repo := "cache-" + strings.ReplaceAll(name, " ", "-")
			reg.Push(t, reg.Ref(repo+":mount-pkgs"), c.image)
			via := reg
			if c.tamper != nil {
				via = reg.WithTamper(t, c.tamper)
			}
			params := map[string]any{"build": "ctx", "load_base": "base", "cache_mounts": true, "cache_repo": via.Host + "/" + repo}
			res := testharness.Run(t, "out", map[string]any{"source": source(via, "app"), "params": params}, work)
			untouched(t)
			if res.ExitCode != 0 || !strings.Contains(res.Stderr, "cache mount pkgs: cannot restore") {
				t.Fatalf("exit %d: want a warning and a build", res.ExitCode)
			}
			var resp api.Response
			res.JSON(t, &resp)
			listing := imageFiles(t, reg.Image(t, reg.Ref("app@"+resp.Version.Digest)))["listing"]
			if strings.TrimSpace(listing) != "done" {
				t.Fatalf("the RUN saw the mount as %q, want it empty", listing)
			}
		})
	}
}

func lastLayer(t *testing.T, img v1.Image) v1.Layer {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("layers: %v", err)
	}
	return layers[len(layers)-1]
}

func digestOf(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func blobBytes(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
