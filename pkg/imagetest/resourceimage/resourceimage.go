// Package resourceimage builds the resource image from binaries built on the host: check, in and
// out compiled with the root Dockerfile's static build line and put on a busybox base by
// dockerfiles/Dockerfile.prebuilt (the Dockerfile's final stage), in seconds when Go's build cache
// is warm. pkg/imagetest's tests run that image; so does the bench's in-container peer.
//
// Every external step (go build, docker import and build) has a timeout and names itself when it
// runs out.
package resourceimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

const (
	// StaticTags and StaticLdflags are the root Dockerfile's build line for the binaries
	// (pkg/imagetest's TestPrebuiltFollowsTheDockerfile checks that it still says so).
	StaticTags    = "containers_image_openpgp exclude_graphdriver_btrfs seccomp netgo osusergo"
	StaticLdflags = `-s -w -linkmode external -extldflags "-static"`
	// CABundle is the host's CA bundle, copied into the image (the registries may be reached
	// through a TLS proxy only the host trusts).
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	// BusyboxRepo is the repository of the base; its tag is the busybox layer's digest.
	BusyboxRepo = "localhost/buildah-image-resource-test/busybox"
)

// Every external step has a bound, so that a busy machine fails the step that is slow, by name.
const (
	GoBuildTimeout   = 15 * time.Minute // cold: ~3 minutes on 2 idle cores
	PrebuiltTimeout  = 5 * time.Minute  // docker build of Dockerfile.prebuilt: two COPYs
	DockerCmdTimeout = 5 * time.Minute  // docker import, image inspect
)

// Options say what to build, and with which Docker.
type Options struct {
	ModuleRoot string   // the repository: cmd/ and dockerfiles/Dockerfile.prebuilt
	Docker     []string // the docker command and its global flags: {"docker"}, or {"docker", "--host", "unix://..."}
	Tag        string   // the image's tag
}

// Build compiles check, in and out into a temporary directory, builds them into o.Tag on the
// busybox base with dockerfiles/Dockerfile.prebuilt and returns the base's tag.
func Build(ctx context.Context, o Options) (string, error) {
	dir, err := os.MkdirTemp("", "resourceimage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := StaticBinaries(ctx, o.ModuleRoot, dir); err != nil {
		return "", err
	}
	if err := copyFile(CABundle, filepath.Join(dir, "ca-certificates.crt")); err != nil {
		return "", fmt.Errorf("copying the host's CA bundle: %w", err)
	}
	base, err := BusyboxBase(ctx, o.Docker)
	if err != nil {
		return "", err
	}
	dockerfile := filepath.Join(o.ModuleRoot, "dockerfiles", "Dockerfile.prebuilt")
	_, err = Run(ctx, PrebuiltTimeout, nil, o.Docker, "build", "--force-rm", "--tag", o.Tag,
		"--file", dockerfile, "--build-arg", "BASE_IMAGE="+base, dir)
	return base, err
}

// StaticBinaries compiles check, in and out as the root Dockerfile does (static, cgo) into dir.
func StaticBinaries(ctx context.Context, moduleRoot, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, GoBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", StaticTags, "-ldflags", StaticLdflags,
		"-o", dir+"/", "./cmd/check", "./cmd/in", "./cmd/out")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("go build of the static binaries did not finish within %s (a busy machine, or a cold build cache)\n%s", GoBuildTimeout, out)
	}
	if err != nil {
		return fmt.Errorf("go build of the static binaries: %w\n%s", err, out)
	}
	return nil
}

// BusyboxBase returns the base: testharness.Busybox's layer (a static busybox, /etc/passwd and
// /tmp), imported into Docker once.
func BusyboxBase(ctx context.Context, docker []string) (string, error) {
	img, err := testharness.Busybox(runtime.GOARCH)
	if err != nil {
		return "", fmt.Errorf("making the busybox base: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return "", fmt.Errorf("reading the busybox image: %w", err)
	}
	digest, err := layers[0].Digest()
	if err != nil {
		return "", fmt.Errorf("digest of the busybox layer: %w", err)
	}
	image := BusyboxRepo + ":" + digest.Hex[:12]
	if ImageID(ctx, docker, image) != "" {
		return image, nil
	}
	rootfs, err := layers[0].Uncompressed()
	if err != nil {
		return "", fmt.Errorf("reading the busybox layer: %w", err)
	}
	defer rootfs.Close()
	_, err = Run(ctx, DockerCmdTimeout, rootfs, docker, "import", "--change", "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "-", image)
	return image, err
}

// ImageID returns the ID of image in Docker, or "" if there is none.
func ImageID(ctx context.Context, docker []string, image string) string {
	id, err := Run(ctx, DockerCmdTimeout, nil, docker, "image", "inspect", "--format", "{{.Id}}", image)
	if err != nil {
		return ""
	}
	return id
}

// Run runs command (its name and first arguments) with args and stdin (nil for none) and
// returns its trimmed stdout. The error names the command and holds its output, or says that it
// did not finish within timeout.
func Run(ctx context.Context, timeout time.Duration, stdin io.Reader, command []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := slices.Concat(command[1:], args)
	cmd := exec.CommandContext(ctx, command[0], full...)
	cmd.Stdin = stdin
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	line := command[0] + " " + strings.Join(full, " ")
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s did not finish within %s (a busy machine?)\nstderr:\n%s", line, timeout, tailOf(stderr.String()))
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w\nstdout:\n%s\nstderr:\n%s", line, err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// tailOf is the last 4000 bytes of s.
func tailOf(s string) string {
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}
