package resource

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/kvfile"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// buildOptions reads the context, build args, labels and Dockerfile the params name, the
// Dockerfile into its model for target (the running platform when nil).
func buildOptions(dir string, p api.OutParams, env Env, target *api.Platform) (build.Options, error) {
	vol := volume.New(dir)
	contextDir, err := vol.Path("params.build", p.Build)
	if err != nil {
		return build.Options{}, err
	}
	if info, statErr := os.Stat(contextDir); statErr != nil || !info.IsDir() {
		return build.Options{}, fmt.Errorf("params.build: %s is not a directory", p.Build)
	}
	file, err := readDockerfile(vol, cmp.Or(p.Dockerfile, filepath.Join(p.Build, "Dockerfile")))
	if err != nil {
		return build.Options{}, err
	}
	buildArgs, err := readBuildArgs(dir, p, env)
	if err != nil {
		return build.Options{}, err
	}
	labels, err := readMap(dir, p.LabelsFile, p.Labels, "params.labels_file", env.Log)
	if err != nil {
		return build.Options{}, err
	}
	opts := build.Options{
		ContextDir: contextDir, Dockerfile: file.Path,
		BuildArgs: buildArgs, Labels: labels, Target: p.TargetStage(),
		NoCache: p.NoCache, Squash: p.Squash, StorageDriver: p.StorageDriver,
		Access:         env.Registries,
		ManifestFormat: p.ManifestFormat, Log: env.Log, Stderr: env.Stderr,
	}
	if target != nil {
		opts.Platform = target.String()
	}
	opts.Model, err = dockerfile.Parse(file.Data, dockerfile.Args{BuildArgs: opts.BuildArgs, Target: opts.Target, Platform: opts.Platform})
	if err != nil {
		return build.Options{}, fmt.Errorf("params.dockerfile: %w", err)
	}
	return opts, nil
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

// concourseVars are the build's environment variables that build_args may name, as in docker-image-resource.
var concourseVars = []string{"BUILD_ID", "BUILD_NAME", "BUILD_JOB_NAME", "BUILD_PIPELINE_NAME", "BUILD_TEAM_NAME", "ATC_EXTERNAL_URL"}

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
