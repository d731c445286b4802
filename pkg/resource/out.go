package resource

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
	"github.com/imagesmith/buildah-image-resource/pkg/tags"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// Out pushes an image to the source's repository: one it builds from a Dockerfile (build), or one
// made elsewhere (image, load, load_file, import_file). Tags are resolved first, so a bad tag file
// fails before any work; blobs go first, the manifest by digest next and tags last.
func Out(ctx context.Context, env Env) (any, error) {
	dir, err := env.Dir()
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeOut(env.Stdin)
	env.hide(req.Source.Secrets()) // what was decoded, even from a request that is not valid
	if err != nil {
		return nil, err
	}
	src, params := req.Source, req.Params
	debug(env.Log, src.Debug)
	for _, note := range req.Notes {
		env.Log.Info(note)
	}
	if env.Registries, err = newPolicy(ctx, src, env); err != nil {
		return nil, err
	}
	client, err := registry.New(ctx, env.Registries, src.Repository, env.Log, env.hideSent(), registry.WithJobs(src.MaxConcurrentUploads))
	if err != nil {
		return nil, err
	}
	tagList, err := tags.Resolve(dir, tags.Params{
		DefaultTag: src.Tag, Variant: src.Variant, TagFile: params.TagFile, TagPrefix: params.TagPrefix,
		TagAsLatest: params.TagAsLatest, AdditionalTags: params.AdditionalTags, Version: params.Version, BumpAliases: params.BumpAliases,
	}, client.Tags)
	if err != nil {
		return nil, err
	}

	var img v1.Image
	var metadata []api.MetadataField
	if params.Build != "" {
		built, err := buildImage(ctx, dir, req, env, tagList[0])
		if err != nil {
			return nil, err
		}
		defer built.close()
		img, metadata = client.MountFrom(built.image, built.mountSources), built.metadata
	} else {
		archive, err := readyImage(dir, params)
		if err != nil {
			return nil, err
		}
		defer archive.Close()
		img = client.MountFrom(archive.Image, layerSources(archive))
	}

	start := time.Now()
	env.Log.Infof("pushing %s:%s", client.Name(), strings.Join(tagList, ", "))
	meter := progress.NewMeter(env.Log, "uploaded", 0)
	updates, consumed := make(chan v1.Update, 16), make(chan struct{})
	go func() { meter.Updates(updates); close(consumed) }()
	digest, err := client.Push(img, tagList, updates)
	<-consumed // Push closes updates: the meter's last line comes before any error's
	if err != nil {
		return nil, err
	}
	size, err := imageSize(img)
	if err != nil {
		return nil, err
	}
	env.Log.Infof("pushed %s@%s in %.1fs: uploaded %s, the registry had the rest of the image's %s",
		client.Name(), digest, time.Since(start).Seconds(), progress.Size(client.Uploaded()), progress.Size(size))
	return api.Response{
		Version: api.Version{Digest: digest.String(), Tag: tagList[0]},
		Metadata: append([]api.MetadataField{
			{Name: "repository", Value: client.Name()},
			{Name: "tags", Value: strings.Join(tagList, " ")},
			{Name: "digest", Value: digest.String()},
			{Name: "size", Value: strconv.FormatInt(size, 10)},
		}, metadata...),
	}, nil
}

// readyImage opens the image a put pushes without building: image (a glob), load, load_file or import_file.
func readyImage(dir string, p api.OutParams) (*imagefile.Archive, error) {
	field, path, err := readyPath(dir, p)
	if err != nil {
		return nil, err
	}
	archive, err := openReady(path, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return archive, nil
}

// readyPath is the param naming the image and its path, checked through the volume: a relative
// one stays in the work dir.
func readyPath(dir string, p api.OutParams) (field, path string, err error) {
	vol := volume.New(dir)
	switch {
	case p.Image != "":
		path, err = globOne(vol, dir, p.Image)
		return "params.image", path, err
	case p.Load != "":
		field, path = "params.load", p.Load
	case p.LoadFile != "":
		field, path = "params.load_file", p.LoadFile
	default:
		field, path = "params.import_file", p.ImportFile
	}
	path, err = vol.Path(field, path)
	return field, path, err
}

// openReady opens the image at path, which readyPath found.
func openReady(path string, p api.OutParams) (*imagefile.Archive, error) {
	platform := v1.Platform{OS: api.RunningPlatform().OS, Architecture: api.RunningPlatform().Architecture}
	switch {
	case p.Image != "", p.Load != "":
		return imagefile.Open(path, platform)
	case p.LoadFile != "":
		format, _, err := imagefile.Detect(path)
		if err != nil || format != imagefile.DockerArchive || p.LoadRepository == "" {
			return imagefile.Open(path, platform)
		}
		tag := p.LoadTag
		if tag == "" {
			tag = "latest"
		}
		return imagefile.OpenDockerArchive(path, p.LoadRepository+":"+tag)
	default:
		img, err := imagefile.Import(path)
		return &imagefile.Archive{Image: img}, err
	}
}

// globOne expands pattern, below dir unless absolute; it must name exactly one file, which stays
// in the work dir when the pattern is relative.
func globOne(vol volume.Volume, dir, pattern string) (string, error) {
	full := pattern
	if !filepath.IsAbs(pattern) {
		full = filepath.Join(dir, pattern)
	}
	matches, err := filepath.Glob(full)
	if err != nil {
		return "", fmt.Errorf("params.image: bad pattern %q: %w", pattern, err)
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("params.image: %q matched %d files, expected exactly one", pattern, len(matches))
	}
	name := matches[0]
	if !filepath.IsAbs(pattern) {
		if name, err = filepath.Rel(dir, name); err != nil {
			return "", fmt.Errorf("params.image: %w", err)
		}
	}
	return vol.Path("params.image", name)
}

// layerSources maps each layer of a saved image to the reference it was saved from, for mounts.
func layerSources(a *imagefile.Archive) map[v1.Hash]string {
	sources := map[v1.Hash]string{}
	if a.Name == "" {
		return sources
	}
	layers, err := a.Image.Layers()
	if err != nil {
		return sources // the push reports it
	}
	for _, l := range layers {
		if digest, err := l.Digest(); err == nil {
			sources[digest] = a.Name
		}
	}
	return sources
}
