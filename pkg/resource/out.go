package resource

import (
	"context"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
	"github.com/imagesmith/buildah-image-resource/pkg/tags"
)

// Out pushes an image to the source's repository: one it builds from a Dockerfile (build, for one
// platform or for each of platforms), or one made elsewhere (image, load, load_file, import_file).
// Tags are resolved first, so a bad tag file fails before any work; blobs go first, the manifest
// by digest next and tags last.
func Out(ctx context.Context, env Env) (any, error) {
	p, err := readPut(ctx, env)
	if err != nil {
		return nil, err
	}
	img, err := putImage(ctx, p)
	if err != nil {
		return nil, err
	}
	defer img.close()
	digest, size, err := pushImage(p, img)
	if err != nil {
		return nil, err
	}
	return response(p, img, digest, size), nil
}

// put is a put's request as Out read it: every later step takes what it needs from it.
type put struct {
	dir    string // the work dir
	src    api.Source
	params api.OutParams
	env    Env // with the source's registry policy
	client *registry.Client
	tags   []string // tags[0] is the version's tag
}

// readPut decodes the request, makes the source's registry policy and the repository's client,
// and resolves the tags.
func readPut(ctx context.Context, env Env) (*put, error) {
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
	client, err := env.connect(ctx, src, req.Notes, registry.WithUploads(src.MaxConcurrentUploads))
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
	return &put{dir: dir, src: src, params: params, env: env, client: client, tags: tagList}, nil
}

// outImage is what a put pushes: an image, or the index of a multi-platform build.
type outImage struct {
	taggable  remote.Taggable
	platforms int                   // the images of a built index; 0 for one image
	size      func() (int64, error) // the bytes the push covers
	metadata  []api.MetadataField   // after repository, tags, digest and size
	close     func()                // releases what making it holds
}

// putImage makes what the put pushes: the images params.platforms builds, the image params.build
// builds, or the image params.image, load, load_file or import_file names.
func putImage(ctx context.Context, p *put) (*outImage, error) {
	switch {
	case len(p.params.Platforms) > 0:
		return buildIndex(ctx, p)
	case p.params.Build != "":
		built, err := buildImage(ctx, p, foreignPlatform(p.params.Platform))
		if err != nil {
			return nil, err
		}
		img := p.client.MountFrom(built.image, built.mountSources)
		return &outImage{taggable: img, size: func() (int64, error) { return imageSize(img) }, metadata: built.metadata, close: built.close}, nil
	default:
		return readyOut(p)
	}
}

// response is the version and metadata of the pushed image.
func response(p *put, img *outImage, digest v1.Hash, size int64) api.Response {
	return api.Response{
		Version: api.Version{Digest: digest.String(), Tag: p.tags[0]},
		Metadata: append([]api.MetadataField{
			{Name: "repository", Value: p.client.Name()},
			{Name: "tags", Value: strings.Join(p.tags, " ")},
			{Name: "digest", Value: digest.String()},
			{Name: "size", Value: strconv.FormatInt(size, 10)},
		}, img.metadata...),
	}
}

// foreignPlatform is platform when it is not the running one: a build for the running platform
// makes no platform choice, as without the param.
func foreignPlatform(platform *api.Platform) *api.Platform {
	if platform == nil || *platform == api.RunningPlatform() {
		return nil
	}
	return platform
}
