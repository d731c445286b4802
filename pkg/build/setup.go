package build

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containers/buildah/define"
	"github.com/containers/image/v5/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/imagesmith/buildah-image-resource/pkg/access"
	"golang.org/x/sys/unix"
)

// environment is what a build needs besides the storage, all of it under
// the build directory so that nothing is read from /etc/containers or
// written to /var.
type environment struct {
	sys          *types.SystemContext
	tmpDir       string // TMPDIR for buildah, big temporary files
	layersDir    string // compressed new layers for the result
	manifestType string // define.OCIv1ImageManifest or define.Dockerv2ImageManifest
	ulimits      []string
	secrets      []string
	pulls        bool // a FROM is not a loaded base: the build pulls it
	isolation    isolation
	downloads    int // blobs a copy from a registry fetches at once (Options.MaxDownloads)
}

func newEnvironment(dir string, opts Options) (*environment, error) {
	env := &environment{
		tmpDir:    cmp.Or(opts.TempDir, filepath.Join(dir, "tmp")),
		layersDir: filepath.Join(dir, "layers"),
		downloads: opts.MaxDownloads,
	}
	emptyDir := filepath.Join(dir, "empty")
	for _, d := range []string{env.tmpDir, env.layersDir, emptyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	switch opts.ManifestFormat {
	case "", "oci":
		env.manifestType = define.OCIv1ImageManifest
	case "docker":
		env.manifestType = define.Dockerv2ImageManifest
	default:
		return nil, fmt.Errorf("build options: unknown manifest format %q (want oci or docker)", opts.ManifestFormat)
	}
	var err error
	if env.isolation, err = chooseIsolation(dir, opts.Sandbox, opts.Log); err != nil {
		return nil, err
	}
	if env.ulimits, err = currentUlimits(); err != nil {
		return nil, err
	}
	if env.secrets, err = secretSpecs(opts.Secrets); err != nil {
		return nil, err
	}
	hosts, err := pulledRegistries(opts)
	if err != nil {
		return nil, err
	}
	env.pulls = len(hosts) > 0
	if opts.CacheRepo != "" {
		repo, err := name.NewRepository(opts.CacheRepo)
		if err != nil {
			return nil, fmt.Errorf("build options: cache repository %q: %w", opts.CacheRepo, err)
		}
		if host := registryHost(repo); !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}

	signaturePolicy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(signaturePolicy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		return nil, fmt.Errorf("writing signature policy: %w", err)
	}
	policy := opts.Access
	if policy == nil {
		policy = access.Anonymous()
	}
	files, err := policy.WriteContainersFiles(dir, hosts)
	if err != nil {
		return nil, err
	}
	env.sys = &types.SystemContext{
		SignaturePolicyPath:         signaturePolicy,
		AuthFilePath:                files.AuthFile,
		SystemRegistriesConfPath:    files.RegistriesConf,
		SystemRegistriesConfDirPath: emptyDir,
		RegistriesDirPath:           emptyDir,
		UserShortNameAliasConfPath:  filepath.Join(dir, "short-name-aliases.conf"),
		BlobInfoCacheDir:            filepath.Join(dir, "blob-info-cache"),
		BigFilesTemporaryDir:        env.tmpDir,
		DockerPerHostCertDirPath:    files.CertsDir,
		DockerRegistryUserAgent:     "buildah-image-resource",
		// FROM ubuntu means docker.io/library/ubuntu, as with docker build.
		PodmanOnlyShortNamesIgnoreRegistriesConfAndForceDockerHub: true,
	}
	if opts.Platform != "" {
		if err := choosePlatform(env.sys, opts.Platform); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// choosePlatform makes sys pick platform ("os/arch[/variant]") in image indexes.
func choosePlatform(sys *types.SystemContext, platform string) error {
	parts := strings.Split(platform, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("build options: platform %q: expected os/arch[/variant]", platform)
	}
	sys.OSChoice, sys.ArchitectureChoice = parts[0], parts[1]
	if len(parts) == 3 {
		sys.VariantChoice = parts[2]
	}
	return nil
}

// currentUlimits keeps RUN at the current nofile/nproc limits: buildah would
// otherwise raise them, which fails without CAP_SYS_RESOURCE.
func currentUlimits() ([]string, error) {
	format := func(v uint64) string {
		if v == unix.RLIM_INFINITY {
			return "-1"
		}
		return strconv.FormatUint(v, 10)
	}
	var specs []string
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"nproc", unix.RLIMIT_NPROC}} {
		var lim unix.Rlimit
		if err := unix.Getrlimit(l.resource, &lim); err != nil {
			return nil, fmt.Errorf("reading %s limit: %w", l.name, err)
		}
		specs = append(specs, fmt.Sprintf("%s=%s:%s", l.name, format(lim.Cur), format(lim.Max)))
	}
	return specs, nil
}

// secretSpecs turns id -> file into buildah's "id=..,src=..,type=file".
func secretSpecs(secrets map[string]string) ([]string, error) {
	var specs []string
	for _, id := range slices.Sorted(maps.Keys(secrets)) {
		path := secrets[id]
		if id == "" || strings.ContainsAny(id, ",=") || strings.Contains(path, ",") {
			return nil, fmt.Errorf("build options: secret id %q or its file path contains ',' or '='", id)
		}
		path, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("build options: secret %q: %w", id, err)
		}
		specs = append(specs, fmt.Sprintf("id=%s,src=%s,type=file", id, path))
	}
	return specs, nil
}

// pulledRegistries returns the registry hosts of the external images no
// base covers, and of StagePulls: those are the ones buildah will pull.
func pulledRegistries(opts Options) ([]string, error) {
	var hosts []string
	for _, ref := range opts.Model.Images() {
		if slices.ContainsFunc(append(slices.Clone(opts.Bases), opts.StageBases...), func(b Base) bool { return slices.Contains(b.Names, ref.Normalized) }) {
			continue
		}
		r, err := name.ParseReference(ref.Normalized)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", ref.Line, err)
		}
		host := registryHost(r.Context())
		opts.Log.Infof("Dockerfile line %d: %s is not a loaded base, it will be pulled", ref.Line, ref.Original)
		if !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	for _, image := range opts.StagePulls {
		r, err := name.ParseReference(image)
		if err != nil {
			return nil, fmt.Errorf("stage image %s: %w", image, err)
		}
		opts.Log.Infof("%s is not a loaded base for its stage's platform, it will be pulled", image)
		if host := registryHost(r.Context()); !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	return hosts, nil
}

// registryHost is the registry of repo as containers/image names it (docker.io for Docker Hub).
func registryHost(repo name.Repository) string {
	if host := repo.RegistryStr(); host != name.DefaultRegistry {
		return host
	}
	return "docker.io"
}
