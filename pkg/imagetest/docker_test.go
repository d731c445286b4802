package imagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/imagetest/resourceimage"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

const (
	// resourceRepo is the repository of the images the tests run (see testImageTag).
	// builderImage is the root Dockerfile's builder stage, kept as its build cache.
	resourceRepo = "localhost/buildah-image-resource"
	builderImage = "localhost/buildah-image-resource-test/builder:test"
	// goImageRepo is GO_IMAGE's repository; its tag names the host's Go version and a hash of
	// what else goes in, so that a cached image is never stale.
	goImageRepo = "localhost/buildah-image-resource-test/golang"
	// goImagePackages are what the Dockerfile's builder stage needs (it installs them from the
	// network when missing; debootstrap puts them in).
	goImagePackages = "gcc,libc6-dev,libseccomp-dev,pkg-config,ca-certificates,git,qemu-user-static"
	// hostCABundle is copied into GO_IMAGE (the module proxy may be reached through a TLS proxy
	// only the host trusts), as resourceimage copies it into the prebuilt image.
	hostCABundle = resourceimage.CABundle
	imagePath    = "ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// fullBuildEnv opts in to TestFullDockerfileBuild.
	fullBuildEnv = "IMAGETEST_FULL_BUILD"
)

// Every external step has a bound, so that a busy machine fails the step that is slow, with its
// name, rather than the whole package at go test's timeout.
const (
	fullBuildTimeout    = 40 * time.Minute // the root Dockerfile: module download and a cold compile
	debootstrapTimeout  = 20 * time.Minute
	dockerCmdTimeout    = 5 * time.Minute // docker import, image ls/inspect/rm
	dockerdStartTimeout = time.Minute
)

// runFlags give the container what chroot isolation needs without --privileged (which fails on
// this machine): every capability but CAP_SYS_RESOURCE, which root lacks here, and no seccomp or
// AppArmor profile. The host network reaches the registry on 127.0.0.1.
var runFlags = []string{
	"--network", "host",
	"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
	"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
}

// requireDocker makes sure Docker can run the tests: it skips under -short, calls
// testharness.Missing without root, docker or dockerd, and starts dockerd when none answers.
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the resource image with Docker")
	}
	testharness.RequireRoot(t, "starting dockerd and running privileged containers")
	testharness.RequireCommand(t, "docker", "docker.io")
	testharness.RequireCommand(t, "dockerd", "docker.io")
	startDocker(t)
}

// buildResourceImage returns the image the tests run, built by resourceimage: check, in and out
// compiled on the host with the root Dockerfile's static build line, put on the busybox base by
// dockerfiles/Dockerfile.prebuilt (the root Dockerfile's final stage). No compile happens in
// Docker: the Go build cache makes it seconds when warm. TestFullDockerfileBuild builds the root
// Dockerfile itself.
func buildResourceImage(t *testing.T) string {
	t.Helper()
	requireDocker(t)
	testharness.RequireFile(t, testharness.BusyboxPath, "busybox-static")
	start := time.Now()
	tag := testImageTag(t, "test")
	base, err := resourceimage.Build(context.Background(), resourceimage.Options{
		ModuleRoot: testharness.ModuleRoot(t), Docker: []string{"docker"}, Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s from the host's binaries in %s", tag, time.Since(start).Round(time.Second))
	removeStaleImages(t, base)
	return tag
}

// testImageTag returns a tag of resourceRepo private to this test process (tests of several
// checkouts may share one Docker daemon and must not run each other's image); the tag is removed
// when the test ends.
func testImageTag(t *testing.T, kind string) string {
	t.Helper()
	tag := fmt.Sprintf("%s:%s-%d", resourceRepo, kind, os.Getpid())
	t.Cleanup(func() { bounded(dockerCmdTimeout, "docker", "image", "rm", tag) })
	return tag
}

// buildFullResourceImage builds the root Dockerfile on bases made here (debootstrap for GO_IMAGE),
// passing extraCA as EXTRA_CA_CERTS, and returns its tag.
func buildFullResourceImage(t *testing.T, extraCA string) string {
	t.Helper()
	requireDocker(t)
	testharness.RequireCommand(t, "debootstrap", "debootstrap")
	goImage, baseImage := goImage(t), busyboxImage(t)

	start := time.Now()
	args := []string{"--network", "host", "--build-arg", "GO_IMAGE=" + goImage, "--build-arg", "BASE_IMAGE=" + baseImage,
		"--build-arg", "GOPROXY=" + goEnv(t, "GOPROXY"), "--build-arg", "EXTRA_CA_CERTS=" + extraCA}
	// The builder stage gets a tag too, so that removeStaleImages keeps it: it is the cache.
	dockerBuild(t, builderImage, append(args, "--target", "builder")...)
	tag := testImageTag(t, "full")
	dockerBuild(t, tag, args...)
	t.Logf("built %s in %s", tag, time.Since(start).Round(time.Second))
	removeStaleImages(t, goImage, baseImage)
	return tag
}

// dockerBuild builds the root Dockerfile as tag; a failed step leaves no container.
func dockerBuild(t *testing.T, tag string, args ...string) {
	t.Helper()
	run(t, fullBuildTimeout, nil, "docker", slices.Concat([]string{"build", "--force-rm", "--tag", tag}, args, []string{testharness.ModuleRoot(t)})...)
}

// removeStaleImages removes the untagged images built on bases: earlier builds, whose compile
// layers would pile up as the sources change. The layers the tagged images share stay.
func removeStaleImages(t *testing.T, bases ...string) {
	t.Helper()
	var baseIDs []string
	for _, base := range bases {
		baseIDs = append(baseIDs, resourceimage.ImageID(context.Background(), []string{"docker"}, base))
	}
	builtOnBase := func(id string) bool { return slices.Contains(baseIDs, id) }
	for _, id := range strings.Fields(run(t, dockerCmdTimeout, nil, "docker", "image", "ls", "--filter", "dangling=true", "--quiet", "--no-trunc")) {
		history := strings.Fields(run(t, dockerCmdTimeout, nil, "docker", "image", "history", "--quiet", "--no-trunc", id))
		if slices.ContainsFunc(history, builtOnBase) {
			bounded(dockerCmdTimeout, "docker", "image", "rm", id) // best effort: a container may still use it
		}
	}
}

// startDocker makes sure a Docker daemon answers. When none does, it starts dockerd, logging to a
// temporary file, and stops it when the test ends.
func startDocker(t *testing.T) {
	t.Helper()
	startDaemon(t, "")
}

// startDaemon makes sure the Docker daemon at host ("" = the default one) answers, starting
// dockerd with args when none does.
func startDaemon(t *testing.T, host string, args ...string) {
	t.Helper()
	if dockerAnswers(host) {
		return
	}
	logPath := filepath.Join(t.TempDir(), "dockerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating the dockerd log: %v", err)
	}
	defer logFile.Close()
	dockerd := exec.Command("dockerd", args...)
	dockerd.Stdout, dockerd.Stderr = logFile, logFile
	if err := dockerd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { dockerd.Wait(); close(exited) }()
	t.Cleanup(func() { stopDockerd(t, dockerd, exited) })

	for deadline := time.Now().Add(dockerdStartTimeout); !dockerAnswers(host); {
		select {
		case <-exited:
			if dockerAnswers(host) { // another test process started one meanwhile
				return
			}
			t.Fatalf("dockerd exited (%v); its log:\n%s", dockerd.ProcessState, tail(logPath))
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd did not answer within %s; its log:\n%s", dockerdStartTimeout, tail(logPath))
		}
	}
	t.Logf("started dockerd %s (pid %d), logging to %s", strings.Join(args, " "), dockerd.Process.Pid, logPath)
}

// dockerAnswers says whether the daemon at host ("" = the default one) answers.
func dockerAnswers(host string) bool {
	_, err := bounded(30*time.Second, "docker", append(daemonFlags(host), "info")...)
	return err == nil
}

// daemonFlags are docker's global flags naming the daemon at host ("" = the default one).
func daemonFlags(host string) []string {
	if host == "" {
		return nil
	}
	return []string{"--host", host}
}

// stopDockerd stops the dockerd this test started: SIGTERM (it stops its containerd too), SIGKILL
// after 30 seconds.
func stopDockerd(t *testing.T, dockerd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	if err := dockerd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("stopping dockerd: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("dockerd still running 30s after SIGTERM: killing it")
		dockerd.Process.Kill()
		<-exited
	}
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	return tailOf(string(data))
}

// tailOf is the last 4000 bytes of s.
func tailOf(s string) string {
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

// goImage returns GO_IMAGE: Debian bookworm made by debootstrap with goImagePackages, the host's Go
// at /usr/local/go and the host's CA bundle. It is made once per machine: debootstrap takes
// minutes, so an image already in Docker is reused.
func goImage(t *testing.T) string {
	t.Helper()
	caBundle, err := os.ReadFile(hostCABundle)
	if err != nil {
		t.Fatalf("reading the host's CA bundle: %v", err)
	}
	inputs := sha256.Sum256(append([]byte(goImagePackages+"\n"), caBundle...))
	image := fmt.Sprintf("%s:%s-bookworm-%x", goImageRepo, strings.TrimPrefix(goEnv(t, "GOVERSION"), "go"), inputs[:4])
	if resourceimage.ImageID(context.Background(), []string{"docker"}, image) != "" {
		return image
	}

	start := time.Now()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	run(t, debootstrapTimeout, nil, "debootstrap", "--variant=minbase", "--include="+goImagePackages, "bookworm", rootfs, debianMirror(t))
	run(t, dockerCmdTimeout, nil, "cp", "-a", goEnv(t, "GOROOT")+"/.", filepath.Join(rootfs, "usr/local/go"))
	if err := os.WriteFile(filepath.Join(rootfs, hostCABundle), caBundle, 0o644); err != nil {
		t.Fatalf("copying the CA bundle into the Go image: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCmdTimeout)
	defer cancel()
	tar := exec.CommandContext(ctx, "tar", "-C", rootfs, "-c", ".")
	tarStream, err := tar.StdoutPipe()
	if err != nil {
		t.Fatalf("tar of %s: %v", rootfs, err)
	}
	if err := tar.Start(); err != nil {
		t.Fatalf("tar of %s: %v", rootfs, err)
	}
	run(t, dockerCmdTimeout, tarStream, "docker", "import", "--change", imagePath, "-", image)
	if err := tar.Wait(); err != nil {
		bounded(dockerCmdTimeout, "docker", "image", "rm", image) // an incomplete image must not be reused
		t.Fatalf("tar of %s: %v", rootfs, err)
	}
	t.Logf("made %s in %s", image, time.Since(start).Round(time.Second))
	return image
}

// debianMirror returns the URI of apt's bookworm source here (/etc/apt/sources.list and
// sources.list.d, one-line or deb822 format), or deb.debian.org when there is none.
func debianMirror(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	for _, path := range append([]string{"/etc/apt/sources.list"}, files...) {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if uri := bookwormURI(string(data)); uri != "" {
			return uri
		}
	}
	t.Logf("no bookworm source in /etc/apt/sources.list*: using deb.debian.org")
	return "http://deb.debian.org/debian"
}

// bookwormURI returns the URI of the first "bookworm" suite in a sources file: a one-line entry
// ("deb [options] URI bookworm components") or a deb822 stanza ("URIs:" and "Suites:").
func bookwormURI(sources string) string {
	fields := map[string][]string{}
	for line := range strings.Lines(sources + "\n\n") {
		words := strings.Fields(line)
		switch {
		case len(words) == 0: // the end of a deb822 stanza
			if slices.Contains(fields["suites:"], "bookworm") && len(fields["uris:"]) > 0 {
				return fields["uris:"][0]
			}
			clear(fields)
		case words[0] == "deb":
			words = words[1:]
			if len(words) > 0 && strings.HasPrefix(words[0], "[") { // options
				end := slices.IndexFunc(words, func(w string) bool { return strings.HasSuffix(w, "]") })
				words = words[end+1:]
			}
			if len(words) >= 2 && words[1] == "bookworm" {
				return words[0]
			}
		case !strings.HasPrefix(words[0], "#"):
			fields[strings.ToLower(words[0])] = words[1:]
		}
	}
	return ""
}

// busyboxImage returns BASE_IMAGE: resourceimage's busybox base, imported into Docker once.
func busyboxImage(t *testing.T) string {
	t.Helper()
	testharness.RequireFile(t, testharness.BusyboxPath, "busybox-static")
	image, err := resourceimage.BusyboxBase(context.Background(), []string{"docker"})
	if err != nil {
		t.Fatal(err)
	}
	return image
}

func goEnv(t *testing.T, key string) string {
	t.Helper()
	return run(t, time.Minute, nil, "go", "env", key)
}

// run runs a command with stdin (nil for none) and returns its trimmed stdout; the test fails,
// with the command's output, if it does or if it takes longer than timeout.
func run(t *testing.T, timeout time.Duration, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %s (a busy machine?)\nstderr:\n%s", name, strings.Join(args, " "), timeout, tailOf(stderr.String()))
	}
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// bounded runs a command with a timeout and returns its stdout.
func bounded(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 10 * time.Second
	return cmd.Output()
}

// containers numbers the containers this process runs, for their names.
var containers atomic.Int64

// runResource runs /opt/resource/<bin> in a container of image, as Concourse does: the request as
// JSON on stdin and, for in and out, dir mounted at /tmp/build/get or /tmp/build/put and passed as
// argv[1]. The container has runFlags. The container is removed when it ends (or is stopped after
// testharness.RunTimeout).
func runResource(t *testing.T, image, bin string, request any, dir string) testharness.Result {
	t.Helper()
	return runResourceWith(t, image, bin, request, dir, runFlags, nil)
}

// runResourceWith is runResource with the container's flags (docker run's) and a wrapper that runs
// the command (e.g. sh -c script sh), nil for none.
func runResourceWith(t *testing.T, image, bin string, request any, dir string, flags, wrapper []string) testharness.Result {
	t.Helper()
	return runContainer(t, container{image: image, flags: flags, wrapper: wrapper}, bin, request, dir)
}

// container says how a resource container runs: on the daemon at host ("" = the default one),
// from image, with docker run's flags and a wrapper around the command (nil for none).
type container struct {
	host, image    string
	flags, wrapper []string
}

// runContainer runs /opt/resource/<bin> as runResource does, in the container c describes.
func runContainer(t *testing.T, c container, bin string, request any, dir string) testharness.Result {
	t.Helper()
	stdin, err := json.Marshal(request)
	if err != nil {
		t.Fatalf("encoding the %s request: %v", bin, err)
	}
	name := fmt.Sprintf("buildah-image-resource-test-%d-%d", os.Getpid(), containers.Add(1))
	args := append(daemonFlags(c.host), "run", "--rm", "--interactive", "--name", name)
	args = append(args, c.flags...)
	command := append(slices.Clone(c.wrapper), "/opt/resource/"+bin)
	if dir != "" {
		workDir := map[string]string{"in": "/tmp/build/get", "out": "/tmp/build/put"}[bin]
		args = append(args, "--volume", dir+":"+workDir)
		command = append(command, workDir)
	}
	args = append(append(args, c.image), command...)

	ctx, cancel := context.WithTimeout(context.Background(), testharness.RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	result := testharness.Result{Stdout: stdout.Bytes(), Stderr: stderr.String()}
	t.Logf("%s in the container: stderr:\n%s", bin, result.Stderr)
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		bounded(dockerCmdTimeout, "docker", append(daemonFlags(c.host), "rm", "--force", name)...)
		t.Fatalf("%s did not finish within %s", bin, testharness.RunTimeout)
	case errors.As(err, &exitErr):
		result.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("docker run %s: %v", bin, err)
	}
	return result
}
