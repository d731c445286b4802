package e2e

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestSecretsNeverShow runs check, in and out with debug on, the registry's real password, sentinel
// passwords for other registries and the mirror, and build secrets from the environment and from a
// file, then looks for every one of them in stdout, stderr, the metadata and every blob pushed.
func TestSecretsNeverShow(t *testing.T) {
	reg := testharness.StartDistribution(t)
	baseDigest := reg.Push(t, reg.Ref("library/busybox:1.36"), testharness.BusyboxImage(t))
	secrets := []string{reg.Password, "pr1vate-registry-pa55", "m1rror-pa55", "env-secret-v4lue", "file-secret-v4lue"}
	src := source(reg, "app", "debug", true,
		"additional_private_registries", []map[string]string{{"registry": "other.example.com", "username": "u", "password": secrets[1]}},
		"registry_mirror", map[string]string{"host": "mirror.example.com", "username": "u", "password": secrets[2]})
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1.36", baseDigest, filepath.Join(work, "base"), nil)
	writeFile(t, filepath.Join(work, "secret.txt"), secrets[4])
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/busybox:1.36")+"\n"+
		"RUN --mount=type=secret,id=a --mount=type=secret,id=b cat /run/secrets/a /run/secrets/b | wc -c > /secret-bytes\n")

	var outputs []testharness.Result
	run := func(bin string, request any, dir string) testharness.Result {
		res := testharness.Run(t, bin, request, dir, "SECRET_A="+secrets[3])
		if res.ExitCode != 0 {
			t.Fatalf("%s failed:\n%s", bin, res.Stderr)
		}
		outputs = append(outputs, res)
		return res
	}
	var versions []api.Version
	run("check", map[string]any{"source": src}, "").JSON(t, &versions)
	var resp api.Response
	run("out", map[string]any{"source": src, "params": map[string]any{
		"build": "ctx", "load_base": "base",
		"secrets": map[string]any{"a": map[string]string{"env": "SECRET_A"}, "b": map[string]string{"source": "secret.txt"}},
	}}, work).JSON(t, &resp)
	run("in", map[string]any{"source": src, "version": resp.Version, "params": map[string]any{"save": true}}, t.TempDir())

	img := reg.Image(t, reg.Ref("app@"+resp.Version.Digest))
	if got := strings.TrimSpace(imageFiles(t, img)["secret-bytes"]); got != "33" {
		t.Fatalf("the build saw %s secret bytes, want 33: the secrets were not mounted", got)
	}
	for _, secret := range secrets {
		for _, res := range outputs {
			if bytes.Contains(res.Stdout, []byte(secret)) || strings.Contains(res.Stderr, secret) {
				t.Errorf("%q shows in a command's output", secret)
			}
		}
		assertNotInBlobs(t, secret, img)
	}
}

// assertNotInBlobs looks for secret in the manifest, the config and every layer, compressed and not.
func assertNotInBlobs(t *testing.T, secret string, img v1.Image) {
	t.Helper()
	manifest, _ := img.RawManifest()
	config, _ := img.RawConfigFile()
	if bytes.Contains(manifest, []byte(secret)) || bytes.Contains(config, []byte(secret)) {
		t.Errorf("%q is in the manifest or config", secret)
	}
	layers, _ := img.Layers()
	for i, l := range layers {
		for _, open := range []func() (io.ReadCloser, error){l.Compressed, l.Uncompressed} {
			rc, err := open()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(rc)
			rc.Close()
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%q is in layer %d", secret, i)
			}
		}
	}
}

// TestNothingLeftBehind: after a failing build and after a successful one, the temp root is empty.
func TestNothingLeftBehind(t *testing.T) {
	reg := testharness.StartInProcess(t)
	baseDigest := reg.Push(t, reg.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1", baseDigest, filepath.Join(work, "base"), nil)
	writeFile(t, filepath.Join(work, "ok/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\nRUN echo ok > /ok\n")
	writeFile(t, filepath.Join(work, "fail/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\nRUN echo failing && false\n")
	for _, ctx := range []string{"fail", "ok"} {
		tmp := t.TempDir()
		res := testharness.Run(t, "out", map[string]any{"source": source(reg, "app"), "params": map[string]any{"build": ctx, "load_base": "base"}}, work, "TMPDIR="+tmp)
		if (res.ExitCode == 0) != (ctx == "ok") {
			t.Fatalf("%s: exit %d\n%s", ctx, res.ExitCode, res.Stderr)
		}
		if ctx == "fail" && !strings.Contains(res.Stderr, "false") {
			t.Errorf("the failing step is not named:\n%s", res.Stderr)
		}
		if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
			t.Errorf("%s: left %v in the temp root", ctx, names(entries))
		}
	}
}

// TestDiskFullLeavesNoPartialFile: a get into a volume that fills up fails clearly and leaves no
// image.tar a later step could mistake for a whole one.
func TestDiskFullLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		testharness.Missing(t, "cannot mount a small tmpfs here (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	reg := testharness.StartInProcess(t)
	digest := reg.Push(t, reg.Ref("big:1"), testharness.MultiLayerImage(t, 2, 2<<20))
	res := testharness.Run(t, "in", map[string]any{"source": source(reg, "big", "tag", "1"), "version": api.Version{Digest: digest.String(), Tag: "1"}}, dir)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "no space left on device") {
		t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "image.tar") {
			t.Errorf("left %s behind", e.Name())
		}
	}
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
