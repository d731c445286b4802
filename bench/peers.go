package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
)

// Job is one put. When it runs, the step's work directory holds the build context in ctx/ (a
// fresh copy) and the base's get in base/ (what Concourse would have fetched before the put).
type Job struct {
	Base      *Base
	Repo, Tag string            // where to push: "127.0.0.1:port/bench/...", "latest"
	Cache     *Cache            // nil: no remote cache configured
	CacheRepo string            // ours: cache_repo (per-step cache images, and cache mounts)
	BuildArgs map[string]string // e.g. http_proxy, which every tool passes to RUN without an ARG
	Platforms []string          // build these platforms into one index (S6); nil: the running one
}

// Cache is the remote cache a put imports (From) and exports (To), both tags of Job.Repo.
type Cache struct{ From, To string }

// Ref is Repo:Tag.
func (j Job) Ref() string { return j.Repo + ":" + j.Tag }

// Peer is a way of doing a put: the tools users would pick, and this resource.
type Peer interface {
	Name() string
	// Check says why the peer cannot run here, or nil.
	Check() error
	// Put builds ctx/ and pushes it on a fresh worker (the step).
	Put(ctx context.Context, s *Step, job Job) error
}

// Ours is this resource's out binary driven as Concourse drives it. With UseGet it builds
// from the base get with load_base; without, it pulls the FROM image from the registry. With
// CacheMounts it keeps the Dockerfile's cache mounts in the job's cache_repo.
type Ours struct {
	Bin         string // directory holding the in and out binaries
	UseGet      bool
	CacheMounts bool
}

func (o Ours) Name() string {
	switch {
	case !o.UseGet:
		return "ours (FROM pulled)"
	case o.CacheMounts:
		return "ours (cache mounts)"
	}
	return "ours"
}

func (o Ours) Check() error {
	_, err := os.Stat(filepath.Join(o.Bin, "out"))
	return err
}

func (o Ours) Put(ctx context.Context, s *Step, job Job) error {
	request, err := o.request(job)
	if err != nil {
		return err
	}
	cmd := s.Command(ctx, filepath.Join(o.Bin, "out"), s.Dir)
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stdout = bytes.NewReader(request), &stdout
	cmd.Env = append(os.Environ(), ConcourseEnv...)
	if err := s.RunCmd(cmd); err != nil {
		return err
	}
	return checkVersion(stdout.Bytes())
}

// request is out's request for job: source and params as a pipeline would give them.
func (o Ours) request(job Job) ([]byte, error) {
	params := map[string]any{"build": "ctx"}
	if o.UseGet {
		params["load_base"] = "base"
	}
	if job.Cache != nil {
		params["cache"] = true
		params["cache_tag"] = job.Cache.From
	}
	if job.CacheRepo != "" {
		params["cache_repo"] = job.CacheRepo
	}
	if o.CacheMounts {
		params["cache_mounts"] = true
	}
	if len(job.BuildArgs) > 0 {
		params["build_args"] = job.BuildArgs
	}
	if len(job.Platforms) > 0 {
		params["platforms"] = job.Platforms
	}
	return json.Marshal(map[string]any{
		"source": map[string]any{"repository": job.Repo, "tag": job.Tag, "insecure": true},
		"params": params,
	})
}

// checkVersion checks that out's stdout is a response with a version.
func checkVersion(stdout []byte) error {
	var resp struct {
		Version struct{ Digest string } `json:"version"`
	}
	if err := json.Unmarshal(stdout, &resp); err != nil || resp.Version.Digest == "" {
		return fmt.Errorf("out printed no version (%v): %q", err, stdout)
	}
	return nil
}

// Docker is docker-image-resource's flow: a fresh dockerd (its start counted), docker load of
// the saved base, docker pull of the cache image and build --cache-from, docker push. Builds
// use BuildKit, so the image is built with BUILDKIT_INLINE_CACHE=1: without it docker's
// BuildKit mode cannot use a pulled image as cache.
type Docker struct{}

func (Docker) Name() string { return "docker-image-resource flow (dockerd)" }

func (Docker) Check() error { return lookAll("dockerd", "/usr/bin/docker", "containerd", "runc") }

func (Docker) Put(ctx context.Context, s *Step, job Job) error {
	d := filepath.Join(s.Dir, "docker")
	sock := filepath.Join(d, "docker.sock")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	err := s.Daemon(ctx, "dockerd", "--host", "unix://"+sock, "--data-root", filepath.Join(d, "data"),
		"--exec-root", filepath.Join(d, "exec"), "--pidfile", filepath.Join(d, "dockerd.pid"),
		"--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false")
	if err != nil {
		return err
	}
	if err := waitUnixHTTP(ctx, sock, "/_ping", 60*time.Second); err != nil {
		return fmt.Errorf("dockerd: %w\n%s", err, tail(s.Log(), 20))
	}
	docker := func(args ...string) error {
		// Debian's docker CLI, of the engine's version.
		cmd := s.Command(ctx, "/usr/bin/docker", append([]string{"--host", "unix://" + sock}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d, "config"), "DOCKER_BUILDKIT=1")
		return s.RunCmd(cmd)
	}

	baseDir := filepath.Join(s.Dir, "base")
	if err := docker("load", "-i", filepath.Join(baseDir, "image")); err != nil {
		return err
	}
	if err := docker("tag", job.Base.ImageID, job.Base.Ref()); err != nil {
		return err
	}
	build := []string{"build", "--progress=plain", "--network=host", "-t", job.Ref()}
	if job.Cache != nil {
		from := job.Repo + ":" + job.Cache.From
		if err := docker("pull", from); err != nil {
			s.Logf("no cache image (%v)", err)
		}
		build = append(build, "--build-arg", "BUILDKIT_INLINE_CACHE=1", "--cache-from", from)
	}
	build = append(build, buildArgFlags("--build-arg", "", job.BuildArgs)...)
	build = append(build, "-f", filepath.Join(s.Dir, "ctx", "Dockerfile"), filepath.Join(s.Dir, "ctx"))
	if err := docker(build...); err != nil {
		return err
	}
	return docker("push", job.Ref())
}

// Buildah is the buildah CLI (Debian's): fresh storage, a private blob-info cache (the default
// one, /var/lib/containers/cache, is host-wide and would leak between fresh workers), the base
// pulled from the get's OCI archive, `build --layers` with --cache-from/--cache-to, push.
type Buildah struct{}

func (Buildah) Name() string { return "buildah CLI" }

func (Buildah) Check() error { return lookAll("buildah", "unshare") }

// blobInfoCacheDir is the buildah CLI's host-wide blob-info cache, hidden per step by a bind mount.
const blobInfoCacheDir = "/var/lib/containers/cache"

func (Buildah) Put(ctx context.Context, s *Step, job Job) error {
	d := filepath.Join(s.Dir, "buildah")
	for _, sub := range []string{"root", "run", "blobinfo"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(blobInfoCacheDir, 0o700); err != nil {
		return err
	}
	command := func(args ...string) *exec.Cmd {
		script := `mount --bind "$0" ` + blobInfoCacheDir + ` && exec buildah "$@"`
		full := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, filepath.Join(d, "blobinfo"),
			"--root", filepath.Join(d, "root"), "--runroot", filepath.Join(d, "run"), "--storage-driver", "overlay"}, args...)
		return s.Command(ctx, "unshare", full...)
	}
	cmd := command("pull", "--quiet", "oci-archive:"+filepath.Join(s.Dir, "base", "image.tar"))
	var id bytes.Buffer
	cmd.Stdout = &id
	if err := s.RunCmd(cmd); err != nil {
		return err
	}
	if err := s.RunCmd(command("tag", strings.TrimSpace(id.String()), job.Base.Ref())); err != nil {
		return err
	}
	build := []string{"build", "--layers", "--isolation", "chroot", "--pull=false", "--tls-verify=false", "-t", job.Ref()}
	if job.Cache != nil {
		build = append(build, "--cache-from", job.Repo+"-buildah-cache", "--cache-to", job.Repo+"-buildah-cache")
	}
	build = append(build, buildArgFlags("--build-arg", "", job.BuildArgs)...)
	build = append(build, "-f", filepath.Join(s.Dir, "ctx", "Dockerfile"), filepath.Join(s.Dir, "ctx"))
	if err := s.RunCmd(command(build...)); err != nil {
		return err
	}
	return s.RunCmd(command("push", "--tls-verify=false", job.Ref(), "docker://"+job.Ref()))
}

// BuildKit is buildkitd and buildctl (the engine of concourse/oci-build-task): a fresh --root
// per put (OCI worker, Debian's runc, overlayfs snapshotter), the base served from the get the
// way oci-build-task serves IMAGE_ARG_* images (a local read-only registry passed as a build
// arg), registry cache import/export with mode=max, and the image pushed by buildctl itself.
type BuildKit struct {
	Dir      string // holds buildkitd and buildctl
	Registry string // host of the registry, reached over plain HTTP
}

func (BuildKit) Name() string { return "BuildKit (buildctl)" }

func (b BuildKit) Check() error {
	for _, bin := range []string{"buildkitd", "buildctl"} {
		if _, err := os.Stat(filepath.Join(b.Dir, bin)); err != nil {
			return fmt.Errorf("%s not built (bench/run builds it): %w", bin, err)
		}
	}
	return lookAll("runc")
}

func (b BuildKit) Put(ctx context.Context, s *Step, job Job) error {
	baseHost, stop, err := serveBase(ctx, filepath.Join(s.Dir, "base"))
	if err != nil {
		return err
	}
	defer stop()

	d := filepath.Join(s.Dir, "buildkit")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	config := filepath.Join(d, "buildkitd.toml")
	toml := fmt.Sprintf(`[worker.oci]
  enabled = true
  snapshotter = "overlayfs"
  gc = false
[worker.containerd]
  enabled = false
[registry.%q]
  http = true
[registry.%q]
  http = true
`, b.Registry, baseHost)
	if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
		return err
	}
	sock := filepath.Join(d, "buildkitd.sock")
	if err := s.Daemon(ctx, filepath.Join(b.Dir, "buildkitd"), "--root", filepath.Join(d, "root"),
		"--addr", "unix://"+sock, "--config", config); err != nil {
		return err
	}
	if err := waitUnixSocket(ctx, sock, 60*time.Second); err != nil {
		return fmt.Errorf("buildkitd: %w\n%s", err, tail(s.Log(), 20))
	}
	ctxDir := filepath.Join(s.Dir, "ctx")
	args := []string{"--addr", "unix://" + sock, "build", "--progress", "plain", "--frontend", "dockerfile.v0",
		"--local", "context=" + ctxDir, "--local", "dockerfile=" + ctxDir, "--opt", "filename=Dockerfile",
		"--opt", "build-arg:BASE_IMAGE=" + baseHost + "/base:latest",
		"--output", "type=image,name=" + job.Ref() + ",push=true"}
	args = append(args, buildArgFlags("--opt", "build-arg:", job.BuildArgs)...)
	if len(job.Platforms) > 0 {
		args = append(args, "--opt", "platform="+strings.Join(job.Platforms, ","))
	}
	if job.Cache != nil {
		// The cache goes to a repository of its own: pushed to the image's repository, its
		// export (which runs alongside the image's push) rewrites the repository's link of a
		// layer while the image's manifest is checked, and docker-registry 2.8, which
		// truncates a link file before writing it, may then read it empty and refuse the
		// manifest (DIGEST_INVALID "provided digest did not match uploaded content").
		cache := job.Repo + "-buildcache:"
		args = append(args,
			"--import-cache", "type=registry,ref="+cache+job.Cache.From,
			"--export-cache", "type=registry,mode=max,ref="+cache+job.Cache.To)
	}
	return s.Run(ctx, filepath.Join(b.Dir, "buildctl"), args...)
}

// buildArgFlags is flag, prefix+name=value for each build arg, sorted by name.
func buildArgFlags(flag, prefix string, args map[string]string) []string {
	names := make([]string, 0, len(args))
	for name := range args {
		names = append(names, name)
	}
	sort.Strings(names)
	var flags []string
	for _, name := range names {
		flags = append(flags, flag, prefix+name+"="+args[name])
	}
	return flags
}

// serveBase serves the image of a get directory (the whole index of a get with an oci/ layout)
// from a read-only in-memory registry on 127.0.0.1, as oci-build-task serves its IMAGE_ARG_*
// images to BuildKit.
func serveBase(ctx context.Context, getDir string) (string, func(), error) {
	write, closeBase, err := baseWriter(getDir)
	if err != nil {
		return "", nil, fmt.Errorf("opening the base: %w", err)
	}
	defer closeBase()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(listener)
	host := listener.Addr().String()
	ref, err := name.ParseReference(host+"/base:latest", name.Insecure)
	if err == nil {
		err = write(ref, remote.WithContext(ctx))
	}
	if err != nil {
		srv.Close()
		return "", nil, fmt.Errorf("serving the base: %w", err)
	}
	return host, func() { srv.Close() }, nil
}

// baseWriter returns a function pushing the get's image, the index its oci/ layout holds (every
// platform) or else the image for the running platform, and one closing what it opened.
func baseWriter(getDir string) (func(name.Reference, ...remote.Option) error, func(), error) {
	if top, err := layout.ImageIndexFromPath(filepath.Join(getDir, "oci")); err == nil {
		m, err := top.IndexManifest()
		if err != nil {
			return nil, nil, err
		}
		if len(m.Manifests) == 1 && m.Manifests[0].MediaType.IsIndex() {
			idx, err := top.ImageIndex(m.Manifests[0].Digest)
			if err != nil {
				return nil, nil, err
			}
			write := func(ref name.Reference, opts ...remote.Option) error { return remote.WriteIndex(ref, idx, opts...) }
			return write, func() {}, nil
		}
	}
	archive, err := imagefile.Open(getDir, v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		return nil, nil, err
	}
	write := func(ref name.Reference, opts ...remote.Option) error {
		return remote.Write(ref, archive.Image, opts...)
	}
	return write, func() { archive.Close() }, nil
}

func waitUnixSocket(ctx context.Context, socket string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.Dial("unix", socket)
		if err == nil {
			conn.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening within %s: %w", socket, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lookAll(commands ...string) error {
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not installed: %w", c, err)
		}
	}
	return nil
}
