package imagetest

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestResourceImage runs the resource image as Concourse would, against a registry on the host:
// check and in fetch a base, out pushes the fetched archive again, then builds a Dockerfile on
// that base (load_base) and pushes it, and check finds what was pushed. The container's root is an
// overlayfs (Docker's overlay2), as a Concourse container's: the build's storage must go to the
// work dir (a bind mount, as Concourse's volume), or to a tmpfs when the work dir is the build
// context, with overlay, not vfs.
func TestResourceImage(t *testing.T) {
	image := buildResourceImage(t)
	reg := testharness.StartInProcess(t)
	base := testharness.BusyboxImage(t)
	baseVersion := api.Version{Digest: reg.Push(t, reg.Ref("library/busybox:1"), base).String(), Tag: "1"}
	baseSource := source(reg, "library/busybox", "tag", "1")

	if versions := check(t, image, baseSource); len(versions) != 1 || versions[0] != baseVersion {
		t.Fatalf("check of the base: %+v, want [%+v]", versions, baseVersion)
	}
	work := t.TempDir()
	if resp := get(t, image, filepath.Join(work, "base"), baseSource, baseVersion); resp.Version != baseVersion {
		t.Fatalf("in: version %+v, want %+v", resp.Version, baseVersion)
	}
	if got := readFile(t, filepath.Join(work, "base/digest")); got != baseVersion.Digest {
		t.Fatalf("in wrote digest %q, want %s", got, baseVersion.Digest)
	}

	t.Run("put of the fetched archive", func(t *testing.T) {
		reg.ResetRequests()
		resp, _ := put(t, image, work, source(reg, "copy"), map[string]any{"image": "base/image.tar"})
		if resp.Version.Digest != baseVersion.Digest {
			t.Errorf("out pushed %s, want the base's %s", resp.Version.Digest, baseVersion.Digest)
		}
		if got := reg.Digest(t, reg.Ref("copy:latest")); got.String() != baseVersion.Digest {
			t.Errorf("the registry has %s for copy:latest, want %s", got, baseVersion.Digest)
		}
		if n, bytes := reg.BlobUploads(); n != 0 {
			t.Errorf("%d blobs (%d bytes) uploaded; the registry had them all", n, bytes)
		}
	})

	t.Run("put of a build with load_base", func(t *testing.T) {
		writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\n"+
			"RUN echo written by RUN > /from-run.txt\n"+
			"COPY hello.txt /from-copy.txt\n")
		writeFile(t, filepath.Join(work, "ctx/hello.txt"), "copied from the build context\n")
		reg.ResetRequests()
		resp, log := put(t, image, work, source(reg, "app"), map[string]any{"build": "ctx", "load_base": "base"})
		assertStorage(t, log, "storage: overlay in /tmp/build/put/.buildah-image-resource-storage-", work)

		if got := reg.Digest(t, reg.Ref("app:latest")); resp.Version != (api.Version{Digest: got.String(), Tag: "latest"}) {
			t.Fatalf("out's version %+v, but the registry has %s for app:latest", resp.Version, got)
		}
		pushed := reg.Image(t, reg.Ref("app@"+resp.Version.Digest))
		files := regularFiles(t, pushed)
		for path, want := range map[string]string{"from-run.txt": "written by RUN\n", "from-copy.txt": "copied from the build context\n"} {
			if files[path] != want {
				t.Errorf("/%s in the pushed image = %q, want %q", path, files[path], want)
			}
		}
		assertOnlyNewBlobsUploaded(t, reg, base, pushed)

		if versions := check(t, image, source(reg, "app")); len(versions) != 1 || versions[0] != resp.Version {
			t.Errorf("check after the put: %+v, want [%+v]", versions, resp.Version)
		}
	})

	t.Run("put in a user namespace", func(t *testing.T) {
		var resp api.Response
		res := runResourceWith(t, image, "out", map[string]any{"source": source(reg, "userns"), "params": map[string]any{"build": "ctx", "load_base": "base"}},
			work, runFlags, []string{"sh", "-c", inUserNamespace, "sh"})
		res.JSON(t, &resp)
		assertStorage(t, res.Stderr, "storage: overlay in /tmp/build/put/.buildah-image-resource-storage-", work)
		files := regularFiles(t, reg.Image(t, reg.Ref("userns@"+resp.Version.Digest)))
		if got := files["from-run.txt"]; got != "written by RUN\n" {
			t.Errorf("/from-run.txt in the pushed image = %q", got)
		}
	})

	t.Run("put without mount rights", func(t *testing.T) {
		// Docker's defaults (no CAP_SYS_ADMIN, its seccomp profile), close to an unprivileged
		// Concourse container: no mount works, so storage falls back to vfs; a build with no RUN
		// still works.
		writeFile(t, filepath.Join(work, "copy-only/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\nCOPY hello.txt /from-copy.txt\n")
		writeFile(t, filepath.Join(work, "copy-only/hello.txt"), "copied without mounts\n")
		var resp api.Response
		res := runResourceWith(t, image, "out", map[string]any{"source": source(reg, "nomount"), "params": map[string]any{"build": "copy-only", "load_base": "base"}},
			work, []string{"--network", "host"}, nil)
		res.JSON(t, &resp)
		if !strings.Contains(res.Stderr, "\nstorage: vfs in /tmp/") || !strings.Contains(res.Stderr, "overlay on a tmpfs failed: ") {
			t.Errorf("the log does not say vfs in /tmp and why")
		}
		if left, _ := filepath.Glob(filepath.Join(work, ".buildah-image-resource-storage-*")); len(left) > 0 {
			t.Errorf("storage left in the work dir: %v", left)
		}
		if got := regularFiles(t, reg.Image(t, reg.Ref("nomount@"+resp.Version.Digest)))["from-copy.txt"]; got != "copied without mounts\n" {
			t.Errorf("/from-copy.txt in the pushed image = %q", got)
		}
	})

	t.Run("put with the work dir as the build context", func(t *testing.T) {
		writeFile(t, filepath.Join(work, "whole.Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\n"+
			"RUN echo written on a tmpfs > /from-run.txt\n"+
			"COPY ctx/hello.txt /from-copy.txt\n")
		resp, log := put(t, image, work, source(reg, "whole"),
			map[string]any{"build": ".", "dockerfile": "whole.Dockerfile", "load_base": "base"})
		assertStorage(t, log, "storage: overlay on a tmpfs of at most ", work)
		files := regularFiles(t, reg.Image(t, reg.Ref("whole@"+resp.Version.Digest)))
		for path, want := range map[string]string{"from-run.txt": "written on a tmpfs\n", "from-copy.txt": "copied from the build context\n"} {
			if files[path] != want {
				t.Errorf("/%s in the pushed image = %q, want %q", path, files[path], want)
			}
		}
	})
}

// inUserNamespace runs its arguments as root of a new user namespace (uids and gids 0-65535
// mapped to themselves) with a mount namespace of its own, as a Concourse worker in containerd's
// fuse-only privileged mode runs a privileged container: storage (containers/storage sees a
// rootless process) must still find overlay, or fall back. busybox's unshare writes no map but
// for -r, which denies setgroups (RUN would fail): the parent writes them.
const inUserNamespace = `set -e
cat > /tmp/request.json
unshare -U -m --propagation private sh -c 'while [ ! -e /tmp/mapped ]; do sleep 0.1; done; exec "$@"' sh "$@" < /tmp/request.json &
pid=$!
while [ "$(readlink /proc/$pid/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do sleep 0.1; done
echo "0 0 65536" > /proc/$pid/uid_map
echo "0 0 65536" > /proc/$pid/gid_map
touch /tmp/mapped
wait $pid`

// assertStorage checks that out's log says, in one line starting with want, where the storage
// went, that it was not vfs, and that the work dir has no storage left in it.
func assertStorage(t *testing.T, log, want, work string) {
	t.Helper()
	var lines []string
	for line := range strings.Lines(log) {
		if strings.HasPrefix(line, "storage: ") {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
		t.Errorf("storage log lines %q, want one starting %q", lines, want)
	}
	if strings.Contains(log, "storage: vfs") {
		t.Errorf("the build used vfs")
	}
	if left, _ := filepath.Glob(filepath.Join(work, ".buildah-image-resource-storage-*")); len(left) > 0 {
		t.Errorf("storage left in the work dir: %v", left)
	}
}

// assertOnlyNewBlobsUploaded checks that pushed starts with base's layers, unchanged, and that the
// registry received exactly the blobs base does not have: the new layers and the config.
func assertOnlyNewBlobsUploaded(t *testing.T, reg *testharness.Registry, base, pushed v1.Image) {
	t.Helper()
	baseLayers, err := base.Layers()
	if err != nil {
		t.Fatalf("layers of the base: %v", err)
	}
	layers, err := pushed.Layers()
	if err != nil || len(layers) <= len(baseLayers) {
		t.Fatalf("the pushed image has %d layers (%v), want the base's %d and more", len(layers), err, len(baseLayers))
	}
	for i, baseLayer := range baseLayers {
		want, _ := baseLayer.Digest()
		if got, _ := layers[i].Digest(); got != want {
			t.Errorf("layer %d of the pushed image is %s, want the base's %s", i, got, want)
		}
	}
	config, err := pushed.RawConfigFile()
	if err != nil {
		t.Fatalf("config of the pushed image: %v", err)
	}
	wantCount, wantBytes := 1, int64(len(config))
	for _, layer := range layers[len(baseLayers):] {
		size, err := layer.Size()
		if err != nil {
			t.Fatalf("size of a new layer: %v", err)
		}
		wantCount, wantBytes = wantCount+1, wantBytes+size
	}
	count, bytes := reg.BlobUploads()
	t.Logf("the registry received %d blobs (%d bytes)", count, bytes)
	if count != wantCount || bytes != wantBytes {
		t.Errorf("the registry received %d blobs (%d bytes), want the %d new ones (%d bytes): the base layer must not be uploaded",
			count, bytes, wantCount, wantBytes)
	}
}

// regularFiles returns the content of every regular file in img's flattened filesystem, by path.
func regularFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	flat := mutate.Extract(img)
	defer flat.Close()
	files := map[string]string{}
	tr := tar.NewReader(flat)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading the pushed image's filesystem: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("reading %s in the pushed image: %v", hdr.Name, err)
			}
			files[strings.TrimPrefix(hdr.Name, "./")] = string(data)
		}
	}
}

// source is a Concourse source for repo on reg, with extra fields laid over it.
func source(reg *testharness.Registry, repo string, extra ...any) map[string]any {
	src := reg.Source()
	src["repository"] = reg.Ref(repo)
	for i := 0; i+1 < len(extra); i += 2 {
		src[extra[i].(string)] = extra[i+1]
	}
	return src
}

func check(t *testing.T, image string, src map[string]any) []api.Version {
	t.Helper()
	var versions []api.Version
	runResource(t, image, "check", map[string]any{"source": src}, "").JSON(t, &versions)
	return versions
}

func get(t *testing.T, image, dir string, src map[string]any, version api.Version) api.Response {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var resp api.Response
	runResource(t, image, "in", map[string]any{"source": src, "version": version, "params": map[string]any{"format": "oci"}}, dir).JSON(t, &resp)
	return resp
}

// put runs out and returns its response and its log.
func put(t *testing.T, image, dir string, src map[string]any, params map[string]any) (api.Response, string) {
	t.Helper()
	var resp api.Response
	res := runResource(t, image, "out", map[string]any{"source": src, "params": params}, dir)
	res.JSON(t, &resp)
	return resp, res.Stderr
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
