package imagetest

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/bench"
	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// unprivilegedCaps are the capabilities of a Concourse container without privileged: true
// (../shared/notes/concourse-containers.md): Docker's default list.
var unprivilegedCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
	"NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP",
}

// unprivilegedFlags run a container as Concourse runs an unprivileged one: those capabilities
// and no other, Docker's default seccomp profile (no unshare, no mount) and AppArmor profile, and
// extra flags.
func unprivilegedFlags(extra ...string) []string {
	flags := []string{"--cap-drop", "ALL"}
	for _, c := range unprivilegedCaps {
		flags = append(flags, "--cap-add", c)
	}
	return append(flags, extra...)
}

// sandboxLine is the line out logs when RUN steps run under pkg/sandbox.
const sandboxLine = "RUN steps: chrooted by the resource's own runtime, without /proc or mounts"

// unprivileged is a way to run the resource as Concourse runs it without privileged: true.
type unprivileged struct {
	container
	// prepare makes the work dir writable for the container's root before each run (nil: it is).
	prepare func(t *testing.T, work string)
}

// TestUnprivilegedPuts runs the puts of testUnprivilegedPuts in Docker's default daemon, on the
// host network (which reaches the registry and the mirror): no user namespace.
func TestUnprivilegedPuts(t *testing.T) {
	image := buildResourceImage(t)
	testUnprivilegedPuts(t, testharness.StartInProcess(t), unprivileged{
		container: container{image: image, flags: unprivilegedFlags("--network", "host")},
	})
}

// testUnprivilegedPuts runs puts with RUN steps in an unprivileged container: the README's demo
// Dockerfile (then again, every step a cache hit), a multi-stage build with a RUN as a non-root
// USER, a cache mount and a secret, and a Debian build that runs apt-get install from the mirror.
// Each pushed image is read back and its files checked.
func testUnprivilegedPuts(t *testing.T, reg *testharness.Registry, u unprivileged) {
	work := t.TempDir()
	busybox := u.saveBase(t, reg, work, "library/busybox", testharness.BusyboxImage(t), "busybox")
	t.Run("the demo's Dockerfile, then a cache hit", func(t *testing.T) {
		writeFile(t, filepath.Join(work, "demo/Dockerfile"), "FROM "+busybox+"\n"+
			"ARG GREETING\n"+
			"RUN echo \"$GREETING\" > /greeting.txt\n"+
			"COPY hello.txt /app/hello.txt\n"+
			"CMD [\"cat\", \"/app/hello.txt\"]\n")
		writeFile(t, filepath.Join(work, "demo/hello.txt"), "hello, world\n")
		params := map[string]any{"build": "demo", "load_base": "busybox", "cache": true, "build_args": map[string]string{"GREETING": "hi from an unprivileged put"}}
		first := u.put(t, work, source(reg, "demo"), params, true)
		files := regularFiles(t, reg.Image(t, reg.Ref("demo@"+first.Version.Digest)))
		for path, want := range map[string]string{"greeting.txt": "hi from an unprivileged put\n", "app/hello.txt": "hello, world\n"} {
			if files[path] != want {
				t.Errorf("/%s in the pushed image = %q, want %q", path, files[path], want)
			}
		}
		// Nothing runs: the cache image has every step.
		again := u.put(t, work, source(reg, "demo"), params, false)
		if again.Version.Digest != first.Version.Digest || metadataValue(again, "cache_hits") != "5/5" {
			t.Errorf("second put: %s with cache_hits %q, want the first's %s with 5/5", again.Version.Digest, metadataValue(again, "cache_hits"), first.Version.Digest)
		}
	})

	t.Run("multi-stage, a non-root USER, a cache mount, a secret", func(t *testing.T) {
		writeFile(t, filepath.Join(work, "stages/Dockerfile"), "FROM "+busybox+" AS build\n"+
			"RUN mkdir /out && echo built in stage one > /out/artifact\n"+
			"FROM "+busybox+"\n"+
			"COPY --from=build /out/artifact /artifact\n"+
			"RUN mkdir -p /home/app && chown 1000:1000 /home/app\n"+
			"USER 1000:1000\n"+
			"WORKDIR /home/app\n"+
			"RUN id -u > uid && echo noise > /dev/null && touch mine\n"+
			"USER root\n"+
			"RUN head -c 5000000 /dev/urandom | wc -c > /urandom-bytes && head -c 3000000 /dev/zero | tr -d '\\000' | wc -c > /zero-nonzeros\n"+
			"RUN --mount=type=cache,target=/var/cache/app echo kept > /var/cache/app/entry && ls /var/cache/app > /cache-listing\n"+
			"RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /token-length\n")
		secret := filepath.Join(work, "token")
		writeFile(t, secret, "unprivileged-secret-value")
		resp := u.put(t, work, source(reg, "stages"), map[string]any{
			"build": "stages", "load_base": "busybox",
			"secrets": map[string]any{"token": map[string]string{"source": "token"}},
		}, true)
		img := reg.Image(t, reg.Ref("stages@"+resp.Version.Digest))
		files := regularFiles(t, img)
		for path, want := range map[string]string{
			"artifact": "built in stage one\n", "home/app/uid": "1000\n", "cache-listing": "entry\n", "token-length": "25\n",
			"urandom-bytes": "5000000\n", "zero-nonzeros": "0\n",
		} {
			if files[path] != want {
				t.Errorf("/%s in the pushed image = %q, want %q", path, files[path], want)
			}
		}
		for path := range files {
			if strings.HasPrefix(path, "dev/") || strings.HasPrefix(path, "var/cache/app/") || strings.HasPrefix(path, "run/secrets/") {
				t.Errorf("/%s, a stand-in for a mount, is in the pushed image", path)
			}
			if strings.Contains(files[path], "unprivileged-secret-value") {
				t.Errorf("/%s holds the secret", path)
			}
		}
		if owner := fileOwner(t, img, "home/app/mine"); owner != 1000 {
			t.Errorf("/home/app/mine is owned by %d, want the USER 1000", owner)
		}
	})

	t.Run("Debian, apt-get install from the mirror", func(t *testing.T) {
		debian := u.saveBase(t, reg, work, "library/debian", debianImage(t), "debian")
		writeFile(t, filepath.Join(work, "apt/Dockerfile"), "FROM "+debian+"\n"+
			"RUN echo 'deb "+debianMirror(t)+" bookworm main' > /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/* && \\\n"+
			"    apt-get update -q && apt-get install -y -q --no-install-recommends hello && rm -rf /var/lib/apt/lists/*\n"+
			"RUN hello > /hello.txt\n")
		resp := u.put(t, work, source(reg, "apt"), map[string]any{"build": "apt", "load_base": "debian"}, true)
		files := regularFiles(t, reg.Image(t, reg.Ref("apt@"+resp.Version.Digest)))
		if got := files["hello.txt"]; got != "Hello, world!\n" {
			t.Errorf("/hello.txt (GNU hello's output) = %q", got)
		}
		if _, ok := files["usr/bin/hello"]; !ok {
			t.Error("/usr/bin/hello is not in the pushed image")
		}
	})
}

// put runs out, checks whether it ran RUN steps under the sandbox, and returns its response.
func (u unprivileged) put(t *testing.T, work string, src, params map[string]any, runs bool) api.Response {
	t.Helper()
	if u.prepare != nil {
		u.prepare(t, work)
	}
	res := runContainer(t, u.container, "out", map[string]any{"source": src, "params": params}, work)
	var resp api.Response
	res.JSON(t, &resp)
	if said := strings.Contains(res.Stderr, sandboxLine); said != runs {
		t.Errorf("out's log says %q: %v, want %v", sandboxLine, said, runs)
	}
	return resp
}

// saveBase pushes img to reg as repo:1 and saves it with in (format: oci) into work/dir, for
// load_base; it returns the reference a FROM names.
func (u unprivileged) saveBase(t *testing.T, reg *testharness.Registry, work, repo string, img v1.Image, dir string) string {
	t.Helper()
	ref := reg.Ref(repo + ":1")
	version := api.Version{Digest: reg.Push(t, ref, img).String(), Tag: "1"}
	getDir := filepath.Join(work, dir)
	if err := os.MkdirAll(getDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if u.prepare != nil {
		u.prepare(t, work)
	}
	request := map[string]any{"source": source(reg, repo, "tag", "1"), "version": version, "params": map[string]any{"format": "oci"}}
	var resp api.Response
	runContainer(t, u.container, "in", request, getDir).JSON(t, &resp)
	if resp.Version != version {
		t.Fatalf("in of %s: version %+v, want %+v", repo, resp.Version, version)
	}
	return ref
}

// debianRootfs is the Debian minbase root file system as a tar, made once per machine with
// debootstrap as bench/run makes it (and in the same place, so that both share it).
const debianRootfs = "/var/cache/buildah-image-resource-bench/debian-bookworm-minbase.tar"

// debianImage is a one-layer Debian bookworm image of debianRootfs.
func debianImage(t *testing.T) v1.Image {
	t.Helper()
	if _, err := os.Stat(debianRootfs); err != nil {
		testharness.RequireCommand(t, "debootstrap", "debootstrap")
		rootfs := filepath.Join(t.TempDir(), "rootfs")
		run(t, debootstrapTimeout, nil, "debootstrap", "--variant=minbase", "bookworm", rootfs, debianMirror(t))
		for _, glob := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"} {
			matches, _ := filepath.Glob(filepath.Join(rootfs, glob))
			for _, m := range matches {
				os.RemoveAll(m)
			}
		}
		if err := os.MkdirAll(filepath.Dir(debianRootfs), 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, dockerCmdTimeout, nil, "tar", "--numeric-owner", "-C", rootfs, "-cf", debianRootfs+".tmp", ".")
		if err := os.Rename(debianRootfs+".tmp", debianRootfs); err != nil {
			t.Fatal(err)
		}
	}
	img, _, err := bench.DebianBase(debianRootfs)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func metadataValue(resp api.Response, name string) string {
	for _, m := range resp.Metadata {
		if m.Name == name {
			return m.Value
		}
	}
	return ""
}

// fileOwner is the uid of the last entry named name in img's layers (-1 when there is none).
func fileOwner(t *testing.T, img v1.Image, name string) int {
	t.Helper()
	owner := -1
	testharness.EachLayerEntry(t, img, func(_ int, h *tar.Header) {
		if h.Name == name {
			owner = h.Uid
		}
	})
	return owner
}
