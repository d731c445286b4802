package resource

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/kvfile"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// builtImage is an image built for a put; close removes the build's storage and files.
type builtImage struct {
	image        v1.Image
	mountSources map[v1.Hash]string // layers -> an image on the registry holding them
	metadata     []api.MetadataField
	closers      []func()
}

func (b *builtImage) onClose(f func()) { b.closers = append(b.closers, f) }

// close releases what the build holds, last acquired first.
func (b *builtImage) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// concourseVars are the build's environment variables that build_args may name, as in docker-image-resource.
var concourseVars = []string{"BUILD_ID", "BUILD_NAME", "BUILD_JOB_NAME", "BUILD_PIPELINE_NAME", "BUILD_TEAM_NAME", "ATC_EXTERNAL_URL"}

// buildImage builds the put's Dockerfile: it reads the build args and labels, loads the bases that
// gets saved (every FROM naming one uses it, unchanged), refuses uncovered FROMs when offline,
// computes the cache keys and reads the cache images the params name, and then either reuses a
// cache image that has every step (nothing runs) or builds with buildah, reusing the steps that
// hit. tag is the tag being pushed, the default cache_tag. target is the platform to build for:
// the running one, with no platform choice made, when nil.
func buildImage(ctx context.Context, dir string, req api.OutRequest, env Env, tag string, target *api.Platform) (_ *builtImage, err error) {
	p := req.Params
	opts, dockerfileText, err := buildOptions(dir, req, env)
	if err != nil {
		return nil, err
	}
	if target != nil {
		opts.Platform = target.String()
	}
	if opts.Model, err = dockerfile.Parse(dockerfileText, dockerfile.Args{BuildArgs: opts.BuildArgs, Target: opts.Target, Platform: opts.Platform}); err != nil {
		return nil, fmt.Errorf("params.dockerfile: %w", err)
	}
	if err := checkParamDirs(dir, p); err != nil {
		return nil, err
	}
	bases, closeBases, err := openBases(dir, p, target, env)
	if err != nil {
		return nil, err
	}
	out := &builtImage{mountSources: map[v1.Hash]string{}}
	out.onClose(closeBases)
	defer func() {
		if err != nil {
			out.close()
		}
	}()
	if opts.Bases, err = mapBases(opts.Model, p, bases, env); err != nil {
		return nil, err
	}
	for _, base := range bases {
		maps.Copy(out.mountSources, layerSources(base))
	}
	if target != nil {
		if opts.StageBases, opts.StagePulls, err = stageBases(dir, p, opts.Model, out, env); err != nil {
			return nil, err
		}
	}

	start := time.Now()
	cached := planCache(ctx, cacheInput{dir: dir, tag: tag, dockerfilePath: opts.Dockerfile, opts: opts, req: req, env: env, platform: platformOf(target)})
	out.onClose(cached.close)
	if cached.allHit() {
		img, mounts, err := cached.reuse()
		if err != nil {
			return nil, err
		}
		maps.Copy(out.mountSources, mounts)
		seconds := time.Since(start).Seconds()
		env.Log.Infof("built in %.1fs: every step from the cache image %s, nothing ran", seconds, cached.chosen.Source)
		out.image = img
		out.metadata = append([]api.MetadataField{{Name: "build_seconds", Value: strconv.FormatFloat(seconds, 'f', 1, 64)}}, cached.metadata(nil)...)
		return out, nil
	}

	if err := withCache(&opts, cached, p, env); err != nil {
		return nil, err
	}
	maps.Copy(out.mountSources, cached.mountSources())
	workDir, err := os.MkdirTemp("", "buildah-image-resource-")
	if err != nil {
		return nil, fmt.Errorf("create build directory: %w", err)
	}
	out.onClose(func() { os.RemoveAll(workDir) })
	opts.WorkDir, opts.TempDir = workDir, filepath.Join(workDir, "tmp")
	opts.VolumeDir = dir // the storage goes there when workDir is on overlayfs (a Concourse container's /)
	if opts.Secrets, err = writeSecrets(dir, workDir, p.Secrets, env); err != nil {
		return nil, err
	}
	mounts, err := restoreCacheMounts(ctx, dir, req, opts.Model, opts.TempDir, mountTagSuffix(target), env)
	if err != nil {
		return nil, err
	}
	if err := ensureEmulation(target, opts.Model, env); err != nil {
		return nil, err
	}
	result, err := build.Build(ctx, opts)
	if err != nil {
		return nil, env.Registries.Explain(err)
	}
	maps.Copy(out.mountSources, result.LayerSources) // layers of pulled FROM images
	out.onClose(func() {
		if err := result.Close(); err != nil {
			env.Log.Warnf("remove build storage: %v", err)
		}
	})
	saved := make(chan struct{}) // the cache mounts are saved while the image is pushed
	go func() { defer close(saved); mounts.save() }()
	out.onClose(func() { <-saved })
	if out.image, err = cached.stamp(result); err != nil {
		return nil, err
	}
	seconds := time.Since(start).Seconds()
	env.Log.Infof("built in %.1fs", seconds)
	out.metadata = append(buildMetadata(result, seconds), cached.metadata(result)...)
	return out, nil
}

// buildOptions reads the context, Dockerfile, build args and labels the params name.
func buildOptions(dir string, req api.OutRequest, env Env) (build.Options, []byte, error) {
	p := req.Params
	vol := volume.New(dir)
	contextDir, err := vol.Path("params.build", p.Build)
	if err != nil {
		return build.Options{}, nil, err
	}
	if info, statErr := os.Stat(contextDir); statErr != nil || !info.IsDir() {
		return build.Options{}, nil, fmt.Errorf("params.build: %s is not a directory", p.Build)
	}
	dockerfile, err := readDockerfile(vol, cmp.Or(p.Dockerfile, filepath.Join(p.Build, "Dockerfile")))
	if err != nil {
		return build.Options{}, nil, err
	}
	buildArgs, err := readBuildArgs(dir, p, env)
	if err != nil {
		return build.Options{}, nil, err
	}
	labels, err := readMap(dir, p.LabelsFile, p.Labels, "params.labels_file", env.Log)
	if err != nil {
		return build.Options{}, nil, err
	}
	return build.Options{
		ContextDir: contextDir, Dockerfile: dockerfile.Path,
		BuildArgs: buildArgs, Labels: labels, Target: p.TargetStage(),
		NoCache: p.NoCache, Squash: p.Squash, StorageDriver: p.StorageDriver,
		Access:         env.Registries,
		ManifestFormat: p.ManifestFormat, Log: env.Log, Stderr: env.Stderr,
	}, dockerfile.Data, nil
}

// readDockerfile reads the Dockerfile through the volume (at most volume.MaxDockerfile); buildah
// reads it again at the path returned, which resolved inside the work dir unless written absolute.
func readDockerfile(vol volume.Volume, name string) (volume.File, error) {
	f, err := vol.ReadFile("params.dockerfile", name, volume.MaxDockerfile)
	var refused *volume.Error
	if errors.As(err, &refused) && errors.Is(err, fs.ErrNotExist) {
		return volume.File{}, fmt.Errorf("params.dockerfile: cannot read %s: %w", name, refused.Err)
	}
	return f, err
}

// withCache sets the build's cache options: the chosen cache image's hits, and cache_repo.
func withCache(opts *build.Options, cached *buildCache, p api.OutParams, env Env) error {
	opts.Cache = cached.forBuild(env.Log.Infof)
	if p.CacheRepo == "" {
		return nil
	}
	opts.CacheRepo, opts.CacheRepoRead = p.CacheRepo, !p.NoCache && !uncachedStageBuilt(cached.plan, p.NoCacheStages)
	if !opts.CacheRepoRead && !p.NoCache {
		env.Log.Warn("cache: no_cache_stages names a stage of this build: cache_repo is written but not read")
	}
	var err error
	opts.CacheTTL, err = cacheTTL(p)
	return err
}

func cacheTTL(p api.OutParams) (time.Duration, error) {
	if p.CacheTTL == "" {
		return 0, nil
	}
	ttl, err := time.ParseDuration(p.CacheTTL)
	if err != nil {
		return 0, fmt.Errorf("params.cache_ttl: %w", err)
	}
	return ttl, nil
}

// readBuildArgs merges, later ones winning, the proxy settings of the environment, build_args
// and build_args_file; the Concourse variables are expanded in build_args' values
// only, as docker-image-resource does.
func readBuildArgs(dir string, p api.OutParams, env Env) (map[string]string, error) {
	explicit := make(map[string]string, len(p.BuildArgs))
	for key, value := range p.BuildArgs {
		explicit[key] = expandConcourseVars(value, env.Getenv)
	}
	explicit, err := readMap(dir, p.BuildArgsFile, explicit, "params.build_args_file", env.Log)
	if err != nil {
		return nil, err
	}
	args := proxyBuildArgs(explicit, env)
	maps.Copy(args, explicit)
	return args, nil
}

// proxyVars are the proxy settings docker-image-resource passes to builds as build args (it
// passed the lower-case ones; docker build takes both forms as predefined args).
var proxyVars = []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

// proxyBuildArgs are the proxy variables set in the environment and not in explicit; the log
// names them, never their values, which may hold credentials.
func proxyBuildArgs(explicit map[string]string, env Env) map[string]string {
	args := map[string]string{}
	var names []string
	for _, name := range proxyVars {
		if _, set := explicit[name]; set {
			continue
		}
		if value := env.Getenv(name); value != "" {
			args[name] = value
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		env.Log.Infof("build args from the environment: %s", strings.Join(names, ", "))
	}
	return args
}

// expandConcourseVars replaces $NAME and ${NAME} for the names in concourseVars (unset: empty),
// the way docker-image-resource's ${value//\$NAME/...} does; all other text stays as written.
func expandConcourseVars(value string, getenv func(string) string) string {
	pairs := make([]string, 0, 4*len(concourseVars))
	for _, name := range concourseVars {
		pairs = append(pairs, "${"+name+"}", getenv(name), "$"+name, getenv(name))
	}
	return strings.NewReplacer(pairs...).Replace(value)
}

// readMap lays a KEY=VALUE, JSON or YAML file (when named) over the inline map. The file wins, as
// in docker-image-resource, whose flags for the file's entries came last; a line names the keys
// set in both. field is the file's param; the inline map's is its name without _file.
func readMap(dir, file string, inline map[string]string, field string, log *logrus.Logger) (map[string]string, error) {
	out := maps.Clone(inline)
	if out == nil {
		out = map[string]string{}
	}
	if file == "" {
		return out, nil
	}
	fromFile, err := kvfile.Read(volume.New(dir), field, file)
	if err != nil {
		return nil, err
	}
	var both []string
	for _, k := range slices.Sorted(maps.Keys(fromFile)) {
		if _, set := out[k]; set {
			both = append(both, k)
		}
		out[k] = fromFile[k]
	}
	if len(both) > 0 {
		log.Infof("%s: sets %s, also in %s: the file's values are used, as docker-image-resource does",
			field, strings.Join(both, ", "), strings.TrimSuffix(field, "_file"))
	}
	return out, nil
}

// openBases opens every load_base and load_bases directory: the image for the running platform,
// or for target when set. For a target, a base holding no image of that platform (an index
// without it, or an image whose config names another) is left out, with a line saying so.
func openBases(dir string, p api.OutParams, target *api.Platform, env Env) ([]*imagefile.Archive, func(), error) {
	paths, err := baseDirs(dir, p)
	if err != nil {
		return nil, nil, err
	}
	dirs := p.LoadBases
	if p.LoadBase != "" {
		dirs = append([]string{p.LoadBase}, dirs...)
	}
	platform := platformOf(target)
	var archives []*imagefile.Archive
	closeAll := func() {
		for _, a := range archives {
			a.Close()
		}
	}
	for i, d := range dirs {
		a, err := imagefile.Open(paths[i], platform)
		if target != nil && (errors.Is(err, imagefile.ErrNoPlatform) || (err == nil && !imageIsFor(a.Image, *target))) {
			if a != nil {
				a.Close()
			}
			env.Log.Infof("load base %s: holds no %s image, not used for that platform", d, target)
			continue
		}
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("load base %s: %w", d, err)
		}
		if a.Name == "" {
			closeAll()
			return nil, nil, fmt.Errorf("load base %s: the image has no name: expected repository and tag files beside it, or a named image", d)
		}
		archives = append(archives, a)
	}
	return archives, closeAll, nil
}

// baseDirs checks load_base and load_bases through the volume: relative ones stay in the work dir.
func baseDirs(dir string, p api.OutParams) ([]string, error) {
	vol := volume.New(dir)
	var paths []string
	if p.LoadBase != "" {
		path, err := vol.Path("params.load_base", p.LoadBase)
		if err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	for i, d := range p.LoadBases {
		path, err := vol.Path(fmt.Sprintf("params.load_bases[%d]", i), d)
		if err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// checkParamDirs refuses a relative cache_from or cache_mounts_from that resolves outside the
// work dir (the cache would only warn). A cache_from naming no directory is a repository.
func checkParamDirs(dir string, p api.OutParams) error {
	vol := volume.New(dir)
	for _, param := range []struct {
		field string
		names []string
	}{{"params.cache_from", p.CacheFrom}, {"params.cache_mounts_from", p.CacheMountsFrom}} {
		for i, name := range param.names {
			if _, err := vol.Path(fmt.Sprintf("%s[%d]", param.field, i), name); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapBases finds which FROMs each base serves, warns about near misses and, offline, refuses any
// FROM no base covers.
func mapBases(model *dockerfile.Model, p api.OutParams, archives []*imagefile.Archive, env Env) ([]build.Base, error) {
	described := make([]dockerfile.Base, len(archives))
	for i, a := range archives {
		described[i] = dockerfile.Base{Name: a.Name, Digest: a.RegistryDigest()}
	}
	mapping := dockerfile.MapBases(model.Images(), described)
	for _, w := range mapping.Warnings {
		env.Log.Warn(w)
	}
	if p.Offline && len(mapping.Uncovered) > 0 {
		var missing []string
		for _, r := range mapping.Uncovered {
			missing = append(missing, fmt.Sprintf("%s (line %d)", r.Original, r.Line))
		}
		return nil, fmt.Errorf("params.offline: no loaded base covers %s", strings.Join(missing, ", "))
	}
	names := make([]map[string]bool, len(archives))
	for i, a := range archives {
		names[i] = map[string]bool{}
		if n, err := dockerfile.Normalize(a.Name); err == nil {
			names[i][n] = true
		}
	}
	for _, m := range mapping.Matches {
		names[m.Base][m.Ref.Normalized] = true
		env.Log.Infof("FROM %s (line %d): using loaded base %s", m.Ref.Original, m.Ref.Line, archives[m.Base].Name)
	}
	bases := make([]build.Base, len(archives))
	for i, a := range archives {
		bases[i] = build.Base{Names: slices.Sorted(maps.Keys(names[i])), Digest: a.RegistryDigest(), Transport: string(a.Format), Path: a.Path, Image: a.Image}
	}
	return bases, nil
}

// writeSecrets gives each build secret a file, written 0600 into the private work dir: an env
// secret's value, or a copy of the source file read through the volume (at most volume.MaxSecret),
// so buildah never follows a path of the work dir. Each value is masked in the log from then on
// (line by line: a RUN that prints a key file shows none of its lines).
func writeSecrets(dir, workDir string, secrets map[string]api.Secret, env Env) (map[string]string, error) {
	out := map[string]string{}
	for id, s := range secrets {
		value, err := secretValue(volume.New(dir), id, s, env.Getenv)
		if err != nil {
			return nil, err
		}
		env.hide(secretLines(value))
		secretDir := filepath.Join(workDir, "secrets")
		if err := os.MkdirAll(secretDir, 0o700); err != nil {
			return nil, err
		}
		path := filepath.Join(secretDir, id)
		if err := os.WriteFile(path, value, 0o600); err != nil {
			return nil, fmt.Errorf("write secret %s: %w", id, err)
		}
		out[id] = path
	}
	return out, nil
}

// secretLines are the lines of a secret worth masking: the whole value and each line, trimmed,
// of four bytes or more (shorter ones would mask common words).
func secretLines(value []byte) []string {
	lines := []string{strings.TrimSpace(string(value))}
	for _, line := range strings.Split(string(value), "\n") {
		if line = strings.TrimSpace(line); len(line) >= 4 {
			lines = append(lines, line)
		}
	}
	return lines
}

// secretValue is a secret's content, from its source file or its environment variable.
func secretValue(vol volume.Volume, id string, s api.Secret, getenv func(string) string) ([]byte, error) {
	if s.Source != "" {
		f, err := vol.ReadFile("params.secrets."+id+".source", s.Source, volume.MaxSecret)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("params.secrets.%s.source: %s does not exist", id, s.Source)
		}
		return f.Data, err
	}
	value := getenv(s.Env)
	if value == "" {
		return nil, fmt.Errorf("params.secrets.%s.env: environment variable %s is not set", id, s.Env)
	}
	return []byte(value), nil
}

func buildMetadata(r *build.Result, seconds float64) []api.MetadataField {
	fields := []api.MetadataField{{Name: "build_seconds", Value: strconv.FormatFloat(seconds, 'f', 1, 64)}}
	if layers, err := r.Image.Layers(); err == nil {
		fields = append(fields, api.MetadataField{Name: "layers", Value: strconv.Itoa(len(layers))})
	}
	for _, base := range slices.Sorted(maps.Keys(r.BaseDigests)) {
		fields = append(fields, api.MetadataField{Name: "base", Value: base + "@" + r.BaseDigests[base]})
	}
	return fields
}
