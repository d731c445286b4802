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
	client, err := registry.New(ctx, src, env.Log, env.hideSent())
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
	field, archive, err := openReady(dir, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return archive, nil
}

// openReady opens the image and names the param it came from.
func openReady(dir string, p api.OutParams) (string, *imagefile.Archive, error) {
	platform := v1.Platform{OS: api.RunningPlatform().OS, Architecture: api.RunningPlatform().Architecture}
	switch {
	case p.Image != "":
		path, err := globOne(dir, p.Image)
		if err != nil {
			return "params.image", nil, err
		}
		a, err := imagefile.Open(path, platform)
		return "params.image", a, err
	case p.Load != "":
		a, err := imagefile.Open(filepath.Join(dir, p.Load), platform)
		return "params.load", a, err
	case p.LoadFile != "":
		path := filepath.Join(dir, p.LoadFile)
		format, _, err := imagefile.Detect(path)
		if err != nil || format != imagefile.DockerArchive || p.LoadRepository == "" {
			a, err := imagefile.Open(path, platform)
			return "params.load_file", a, err
		}
		tag := p.LoadTag
		if tag == "" {
			tag = "latest"
		}
		a, err := imagefile.OpenDockerArchive(path, p.LoadRepository+":"+tag)
		return "params.load_file", a, err
	default:
		img, err := imagefile.Import(filepath.Join(dir, p.ImportFile))
		return "params.import_file", &imagefile.Archive{Image: img}, err
	}
}

// globOne expands pattern below dir; it must name exactly one file.
func globOne(dir, pattern string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return "", fmt.Errorf("bad pattern %q: %w", pattern, err)
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("%q matched %d files, expected exactly one", pattern, len(matches))
	}
	return matches[0], nil
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
