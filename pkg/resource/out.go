package resource

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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
	client, err := registry.New(ctx, env.Registries, src.Repository, env.Log, env.hideSent(), registry.WithUploads(src.MaxConcurrentUploads))
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

	if len(params.Platforms) > 0 {
		return outIndex(ctx, dir, req, env, client, tagList)
	}

	var img remote.Taggable
	var metadata []api.MetadataField
	if params.Build != "" {
		built, err := buildImage(ctx, dir, req, env, tagList[0], foreignPlatform(params.Platform))
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
		if img, err = readyTaggable(client, archive, params, env); err != nil {
			return nil, err
		}
	}

	start := time.Now()
	env.Log.Infof("pushing %s:%s", client.Name(), strings.Join(tagList, ", "))
	digest, err := push(client, img, tagList, env)
	if err != nil {
		return nil, err
	}
	size, err := taggableSize(img)
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

// readyTaggable is what a put without a build pushes: the whole index when params.image names an
// OCI layout holding one (a get with format oci-layout: every platform, the digest unchanged, as
// registry-image-resource), else the archive's image.
func readyTaggable(client *registry.Client, archive *imagefile.Archive, p api.OutParams, env Env) (remote.Taggable, error) {
	if p.Image != "" && archive.Format == imagefile.OCILayout {
		idx, err := imagefile.SavedIndex(archive.Path)
		if err != nil {
			return nil, fmt.Errorf("params.image: %w", err)
		}
		if idx != nil {
			m, err := idx.IndexManifest()
			if err != nil {
				return nil, fmt.Errorf("params.image: %w", err)
			}
			env.Log.Infof("params.image: %s holds an index of %d images: pushing all of it", p.Image, len(m.Manifests))
			return idx, nil
		}
	}
	return client.MountFrom(archive.Image, layerSources(archive)), nil
}

// taggableSize is the bytes of an image's config and layers, or of every image of an index.
func taggableSize(t remote.Taggable) (int64, error) {
	idx, ok := t.(v1.ImageIndex)
	if !ok {
		return imageSize(t.(v1.Image))
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	var total int64
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return 0, fmt.Errorf("image %s: %w", d.Digest, err)
		}
		size, err := imageSize(img)
		if err != nil {
			return 0, err
		}
		total += size
	}
	return total, nil
}

// push pushes t and its tags, logging the upload's progress; the meter's last line comes before
// any error's (Push closes the updates channel on every path).
func push(client *registry.Client, t remote.Taggable, tags []string, env Env) (v1.Hash, error) {
	meter := progress.NewMeter(env.Log, "uploaded", 0)
	updates, consumed := make(chan v1.Update, 16), make(chan struct{})
	go func() { meter.Updates(updates); close(consumed) }()
	digest, err := client.Push(t, tags, updates)
	<-consumed
	return digest, err
}

// outIndex builds every platform of params.platforms and pushes their index: the images by
// digest first, the index by digest next, the tags last. The version is the index's digest.
func outIndex(ctx context.Context, dir string, req api.OutRequest, env Env, client *registry.Client, tagList []string) (any, error) {
	built, err := buildPlatforms(ctx, dir, req, env, tagList[0], client)
	if err != nil {
		return nil, err
	}
	defer built.close()
	start := time.Now()
	env.Log.Infof("pushing %s:%s (%s)", client.Name(), strings.Join(tagList, ", "), platformCount(len(built.images)))
	digest, err := push(client, built.index, tagList, env)
	if err != nil {
		return nil, err
	}
	size, err := indexSize(built.images)
	if err != nil {
		return nil, err
	}
	platforms, err := platformDigests(built.index)
	if err != nil {
		return nil, err
	}
	env.Log.Infof("pushed %s@%s in %.1fs: uploaded %s, the registry had the rest of the images' %s",
		client.Name(), digest, time.Since(start).Seconds(), progress.Size(client.Uploaded()), progress.Size(size))
	metadata := append([]api.MetadataField{
		{Name: "repository", Value: client.Name()},
		{Name: "tags", Value: strings.Join(tagList, " ")},
		{Name: "digest", Value: digest.String()},
		{Name: "size", Value: strconv.FormatInt(size, 10)},
	}, platforms...)
	return api.Response{
		Version:  api.Version{Digest: digest.String(), Tag: tagList[0]},
		Metadata: append(metadata, built.metadata...),
	}, nil
}

// foreignPlatform is platform when it is not the running one: a build for the running platform
// makes no platform choice, as without the param.
func foreignPlatform(platform *api.Platform) *api.Platform {
	if platform == nil || *platform == api.RunningPlatform() {
		return nil
	}
	return platform
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
