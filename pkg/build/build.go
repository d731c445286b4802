// Package build builds a Dockerfile with the buildah library (chroot isolation, or the
// resource's own runtime, pkg/sandbox, where the container may not mount) into a private
// containers-storage under a work directory, and
// hands the result back as a go-containerregistry image ready to push.
//
// It is the only package of the project that imports buildah and
// containers/*. Bases that a Concourse get already fetched are loaded into
// the storage before the build (no registry contact for them), and the built
// image reuses their original compressed layers, as it does those of the
// images the build pulls, so a push uploads only the new layers. An earlier
// image of the same build can serve as cache on a fresh storage (CacheImage): the
// steps it has are not run and keep its layers.
//
// A binary using this package must call Reexec first thing in main.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containers/buildah"
	"github.com/containers/buildah/define"
	"github.com/containers/buildah/imagebuildah"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/storage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/imagesmith/buildah-image-resource/pkg/access"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/imageconfig"
	"github.com/imagesmith/buildah-image-resource/pkg/sandbox"
	"github.com/sirupsen/logrus"
)

// Reexec must be called first in main; if it returns true, the process was
// re-executed by buildah (chroot isolation, copier) and main must return. Run as the sandbox
// runtime (see isolation), it does not return.
func Reexec() bool {
	if filepath.Base(os.Args[0]) == sandbox.Name {
		os.Exit(sandbox.Main(os.Args[1:], os.Stderr))
	}
	return buildah.InitReexec()
}

// Options says what to build and how.
type Options struct {
	ContextDir string // absolute path of the build context
	Dockerfile string // absolute path of the Dockerfile
	// Model is the Dockerfile as the caller read it (dockerfile.Parse of the file with BuildArgs,
	// Target and Platform): the images the build pulls and the base its target builds on.
	Model     *dockerfile.Model
	BuildArgs map[string]string
	// Labels are laid over the built image's config (after the build: they are no step).
	Labels map[string]string
	Target string
	// Platform is the platform to build for, "os/arch[/variant]". "" builds for the running
	// platform with no choice made (each base as it is). Set, it is buildah's --platform: bases
	// and pulls are that platform's, TARGETPLATFORM, TARGETOS, TARGETARCH and TARGETVARIANT say
	// it, and a RUN of a foreign architecture runs under the emulation the caller set up.
	Platform string
	// Secrets maps a secret id to the path of a file holding it, for
	// RUN --mount=type=secret,id=<id>.
	Secrets map[string]string
	NoCache bool
	// MaxDownloads bounds the blobs a pull of the build (FROM, a cache image's base, cache_repo)
	// fetches at once: the source's max_concurrent_downloads. 0 = containers/image's default.
	MaxDownloads int
	// Sandbox runs RUN steps with the resource's own runtime (pkg/sandbox) even where chroot
	// isolation would work; where it would not, they always do.
	Sandbox bool
	// CacheImage, when set, is an earlier image of this build whose leading steps of the final
	// stage are reused (see CacheImage).
	CacheImage *CacheImage
	// CacheRepo is a repository for per-step cache images (buildah's cache-to), read too
	// (cache-from) when CacheRepoRead is set. CacheTTL ignores older ones.
	CacheRepo     string
	CacheRepoRead bool
	CacheTTL      time.Duration
	// Squash merges the layers the build adds into one, keeping the base's
	// layers as they are (docker build --squash): a push still reuses them.
	Squash bool
	Bases  []Base // loaded bases
	// StageBases are loaded bases for the stages built for another platform than Platform
	// (FROM --platform=$BUILDPLATFORM ...), each with its Platform set. A name both lists carry
	// names a manifest list in storage: each stage finds its platform's image.
	StageBases []Base
	// StagePulls are the images (normalized references) stages built for another platform read
	// that no loaded base holds for that platform: the build pulls them.
	StagePulls []string
	// StorageDriver is "", "overlay" or "vfs"; "" probes overlay (a real
	// mount test) and falls back to vfs.
	StorageDriver string
	// VolumeDir, when set, may hold the storage in a hidden directory while WorkDir is on an
	// overlayfs, where overlay cannot go: the put's work dir (see openStorage).
	VolumeDir string
	// WorkDir is a private directory for the storage, run root, temporary
	// files and policy; Close removes everything Build put there. Build marks
	// it a top directory for ext4's inode allocator (see spreadInodes).
	WorkDir string
	// TempDir is buildah's TMPDIR: RUN --mount=type=cache directories live below it, so a
	// caller can fill them before the build and read them after it. "" = inside WorkDir.
	TempDir string
	// Access is the source's registry-access policy: credentials, CA roots, client certificates,
	// insecure registries and Docker Hub's mirror for every registry the build contacts (FROM
	// images no base covers, cache_repo). nil = anonymous, system roots.
	Access         *access.Policy
	ManifestFormat string         // "oci" (default) or "docker"
	Log            *logrus.Logger // progress and diagnostics; nil = stderr
	Stderr         io.Writer      // where step headers and RUN output go; nil = os.Stderr
}

// Base is an image already loaded (from a Concourse get).
type Base struct {
	// Names are every name the Dockerfile uses for it, normalized (e.g.
	// docker.io/library/busybox:latest, or repo@sha256:...); the image is
	// findable under each.
	Names []string
	// Digest is the manifest digest when known (for FROM x@sha256: lookups).
	Digest    string
	Transport string // "oci-archive" | "oci" | "docker-archive"
	// Path is the archive file or the OCI layout directory. A layout holding
	// several images: the one whose digest is Digest (or Image's digest), or
	// the one for the running platform.
	Path string
	// Platform is the platform ("os/arch[/variant]") a StageBases image is loaded for.
	Platform string
	// Image is the same image as go-containerregistry sees it (compressed
	// layers as saved); its layers are reused in the result. May be nil.
	// When set for an OCI base, it is what is loaded (its blobs read in
	// place); Path is read by containers/image otherwise.
	Image v1.Image
}

// Step is one Dockerfile instruction as it ran.
type Step struct {
	Stage, Stages int // 1-based stage of a multi-stage build; 0 when single-stage
	Number, Total int // position within the stage (Total 0 if unknown)
	Instruction   string
	Duration      time.Duration
	Cached        bool // buildah's layer cache had it: it did not run
}

// Result is a built image. It is valid until Close.
type Result struct {
	// Image is the built image with OCI media types (docker if asked). Layers
	// that a base has are the base's original compressed layers, layers of a
	// pulled image are listed as its registry stores them (and fetched from it
	// only if read); new layers are read from storage and gzip-compressed on
	// first use.
	Image v1.Image
	Steps []Step
	// BaseDigests maps each base name (loaded or pulled) to its digest.
	BaseDigests map[string]string
	// LayerSources maps the digest of each layer of Image that comes from an image the build
	// pulled to that image's reference (repository@digest): a push to the same registry can mount
	// it from there.
	LayerSources map[v1.Hash]string
	// Labels are the labels laid over the config (Options.Labels and the base's name and
	// digest); ReplacedLabels the values they replaced.
	Labels, ReplacedLabels map[string]string
	// CacheBytesRead counts the bytes of layers read from Options.CacheImage.
	CacheBytesRead int64

	dir         string // everything Build made, under Options.WorkDir
	storageRoot string // the storage's graph root, maybe outside dir
	store       storage.Store
}

// Build builds opts.Dockerfile. On error, everything made is removed.
func Build(ctx context.Context, opts Options) (_ *Result, err error) {
	opts, err = withDefaults(opts)
	if err != nil {
		return nil, err
	}
	if err := spreadInodes(opts.WorkDir); err != nil {
		opts.Log.Debugf("storage: %v", err)
	}
	dir, err := os.MkdirTemp(opts.WorkDir, "build-")
	if err != nil {
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	r := &Result{dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()

	opened, err := openStorage(dir, opts, hostProbe())
	if err != nil {
		return nil, err
	}
	r.store, r.storageRoot = opened.store, opened.root
	env, err := newEnvironment(dir, opts)
	if err != nil {
		return nil, err
	}
	if r.BaseDigests, err = loadBases(ctx, r.store, env, opts); err != nil {
		return nil, err
	}
	if opts.CacheImage != nil {
		r.CacheBytesRead, err = seedCache(ctx, r.store, env, opts.CacheImage, opts.Log)
		if err != nil {
			opts.Log.Warnf("cache: %v; building without it", err)
			opts.CacheImage = nil // nor are its layers reused
		}
	}
	steps := newStepLog(opts.Stderr)
	buildOpts, err := buildahOptions(opts, env, steps)
	if err != nil {
		return nil, err
	}
	restoreEnv, err := buildahEnv(env.tmpDir, env.downloads)
	if err != nil {
		return nil, err
	}
	id, _, err := imagebuildah.BuildDockerfiles(ctx, r.store, buildOpts, opts.Dockerfile)
	restoreEnv()
	r.Steps = steps.finish()
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", filepath.Base(opts.Dockerfile), err)
	}
	pulled := pulledStorageImages(r.store, id, r.BaseDigests)
	maps.Copy(r.BaseDigests, pulledDigests(pulled, r.BaseDigests))
	r.Image, r.LayerSources, err = resultImage(ctx, r.store, id, opts, env, pulled)
	if err != nil {
		return nil, err
	}
	if r.Labels, err = Labels(opts); err != nil {
		return nil, err
	}
	if r.Image, r.ReplacedLabels, err = imageconfig.WithLabels(r.Image, r.Labels, nil); err != nil {
		return nil, err
	}
	return r, nil
}

// Close shuts the storage down (unmounting everything) and removes all
// files Build made.
func (r *Result) Close() error {
	if r == nil || r.dir == "" {
		return nil
	}
	var errs []error
	if r.store != nil {
		if _, err := r.store.Shutdown(true); err != nil {
			errs = append(errs, fmt.Errorf("shutting down storage: %w", err))
		}
		r.store = nil
	}
	for _, dir := range []string{r.storageRoot, r.dir} {
		if dir == "" {
			continue
		}
		if err := removeAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	r.dir, r.storageRoot = "", ""
	return errors.Join(errs...)
}

// buildahOptions are the options for imagebuildah.BuildDockerfiles.
func buildahOptions(opts Options, env *environment, out io.Writer) (define.BuildOptions, error) {
	annotations, err := baseAnnotations(opts)
	if err != nil {
		return define.BuildOptions{}, err
	}
	cacheFrom, cacheTo, err := cacheRepos(opts)
	if err != nil {
		return define.BuildOptions{}, err
	}
	buildOpts := define.BuildOptions{
		ContextDirectory: opts.ContextDir,
		PullPolicy:       define.PullIfMissing, // a loaded base is never looked up in a registry
		Args:             maps.Clone(opts.BuildArgs),
		Target:           opts.Target,
		Annotations:      annotations,
		OutputFormat:     env.manifestType,
		// One layer per instruction, as docker build; with Squash, one
		// layer per stage on top of the (untouched) base layers.
		Layers:                  !opts.Squash,
		NoCache:                 opts.NoCache,
		CacheFrom:               cacheFrom,
		CacheTo:                 cacheTo,
		CacheTTL:                opts.CacheTTL,
		RemoveIntermediateCtrs:  true,
		ForceRmIntermediateCtrs: true,
		Out:                     out,
		Err:                     opts.Stderr,
		SignaturePolicyPath:     env.sys.SignaturePolicyPath,
		SystemContext:           env.sys,
		CommonBuildOpts:         &define.CommonBuildOptions{Ulimit: env.ulimits, Secrets: env.secrets},
		IDMappingOptions:        &define.IDMappingOptions{HostUIDMapping: true, HostGIDMapping: true},
		NetworkInterface:        hostNetwork{},
		MaxPullPushRetries:      2,
		PullPushRetryDelay:      2 * time.Second,
	}
	env.isolation.apply(&buildOpts)
	if opts.Platform != "" {
		withPlatform(&buildOpts, env)
	}
	return buildOpts, nil
}

// withPlatform builds for env's platform choice. With a platform chosen, buildah's "missing"
// pull policy asks the registry whether a base in storage is the newest for that platform, so
// when every FROM is a loaded base the policy is "never": no registry contact, as without one.
func withPlatform(o *define.BuildOptions, env *environment) {
	o.Platforms = []struct{ OS, Arch, Variant string }{{env.sys.OSChoice, env.sys.ArchitectureChoice, env.sys.VariantChoice}}
	if !env.pulls {
		o.PullPolicy = define.PullNever
	}
}

func withDefaults(opts Options) (Options, error) {
	for what, p := range map[string]string{"context dir": opts.ContextDir, "Dockerfile": opts.Dockerfile, "work dir": opts.WorkDir} {
		if !filepath.IsAbs(p) {
			return opts, fmt.Errorf("build options: %s %q is not an absolute path", what, p)
		}
	}
	if opts.VolumeDir != "" {
		abs, err := filepath.Abs(opts.VolumeDir)
		if err != nil {
			return opts, fmt.Errorf("build options: volume dir: %w", err)
		}
		opts.VolumeDir = abs
	}
	if opts.Model == nil {
		return opts, fmt.Errorf("build options: no Dockerfile model")
	}
	if !slices.Contains([]string{"", "overlay", "vfs"}, opts.StorageDriver) {
		return opts, fmt.Errorf("build options: unknown storage driver %q (want overlay or vfs)", opts.StorageDriver)
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
		opts.Log.SetOutput(opts.Stderr)
	}
	return opts, nil
}

// buildahEnv sets the environment buildah reads during a build and returns a function restoring
// the previous one:
//   - TMPDIR: buildah's temporary files (it reads only $TMPDIR) go into dir;
//   - CONTAINERS_HELPER_BINARY_DIR: buildah's pull of a cache_repo image asks for a network
//     backend first and fails when netavark is not installed, though chroot isolation always
//     uses the host network and never runs it. A placeholder that is never run answers that.
//   - CONTAINERS_CONF_OVERRIDE, when downloads > 0: a containers.conf whose
//     image_parallel_copies bounds the blobs buildah's own pulls (FROM, cache_repo) fetch at
//     once, as max_concurrent_downloads bounds ours. containers/common reads it once a process.
func buildahEnv(dir string, downloads int) (restore func(), err error) {
	helpers := filepath.Join(dir, "helpers")
	if err := os.MkdirAll(helpers, 0o755); err != nil {
		return nil, err
	}
	stub := "#!/bin/sh\necho 'netavark: not used: builds run with chroot isolation on the host network' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(helpers, "netavark"), []byte(stub), 0o755); err != nil {
		return nil, fmt.Errorf("network backend placeholder: %w", err)
	}
	restores := []func(){setEnv("TMPDIR", dir), setEnv("CONTAINERS_HELPER_BINARY_DIR", helpers)}
	if downloads > 0 {
		conf := filepath.Join(dir, "containers.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, "[engine]\nimage_parallel_copies = %d\n", downloads), 0o644); err != nil {
			return nil, fmt.Errorf("containers.conf: %w", err)
		}
		restores = append(restores, setEnv("CONTAINERS_CONF_OVERRIDE", conf))
	}
	return func() {
		for _, r := range restores {
			r()
		}
	}, nil
}

func setEnv(key, value string) (restore func()) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	return func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	}
}

// Labels are the labels a build lays over its config: opts.Labels, plus
// org.opencontainers.image.base.name / .base.digest when the final stage is built on a loaded
// base (opts.Labels win).
func Labels(opts Options) (map[string]string, error) {
	all := maps.Clone(opts.Labels)
	if all == nil {
		all = map[string]string{}
	}
	base, err := loadedBaseLabels(opts)
	if err != nil {
		return nil, err
	}
	for k, v := range base {
		if _, set := all[k]; !set {
			all[k] = v
		}
	}
	return all, nil
}

// baseAnnotations are the base's name and digest as "k=v" manifest annotations (OCI only).
func baseAnnotations(opts Options) ([]string, error) {
	if opts.ManifestFormat == "docker" {
		return nil, nil
	}
	base, err := loadedBaseLabels(opts)
	if err != nil {
		return nil, err
	}
	var annotations []string
	for _, k := range slices.Sorted(maps.Keys(base)) {
		annotations = append(annotations, k+"="+base[k])
	}
	return annotations, nil
}

// loadedBaseLabels names the loaded base the final stage is built on, if any.
func loadedBaseLabels(opts Options) (map[string]string, error) {
	ref := opts.Model.FinalBase()
	for _, b := range opts.Bases {
		if ref != nil && slices.Contains(b.Names, ref.Normalized) {
			digest, err := baseDigest(b)
			if err != nil {
				return nil, err
			}
			return map[string]string{
				"org.opencontainers.image.base.name":   ref.Normalized,
				"org.opencontainers.image.base.digest": digest,
			}, nil
		}
	}
	return nil, nil
}

// cacheRepos are buildah's cache-from and cache-to repositories.
func cacheRepos(opts Options) (from, to []reference.Named, err error) {
	if opts.CacheRepo == "" {
		return nil, nil, nil
	}
	repo, err := reference.ParseNormalizedNamed(opts.CacheRepo)
	if err != nil {
		return nil, nil, fmt.Errorf("cache repository %q: %w", opts.CacheRepo, err)
	}
	if opts.CacheRepoRead {
		from = []reference.Named{repo}
	}
	return from, []reference.Named{repo}, nil
}

// baseDigest is the manifest digest of a base: Digest, or its image's.
func baseDigest(b Base) (string, error) {
	if b.Digest != "" || b.Image == nil {
		return b.Digest, nil
	}
	h, err := b.Image.Digest()
	if err != nil {
		return "", fmt.Errorf("computing digest of base %v: %w", b.Names, err)
	}
	return h.String(), nil
}
