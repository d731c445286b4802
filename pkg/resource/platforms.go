package resource

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/emulation"
)

// buildIndex builds the Dockerfile once per platform of params.platforms, one after the other
// (the builds share the process environment buildah reads, and a 2-core worker gains nothing
// from running them together), and gathers the images in an OCI index (a docker manifest list
// with manifest_format docker). Each image's layers are mountable as the put's client says.
func buildIndex(ctx context.Context, p *put) (_ *outImage, err error) {
	platforms := p.params.Platforms
	var images []v1.Image
	var metadata []api.MetadataField
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	start := time.Now()
	for i := range platforms {
		target := &platforms[i]
		p.env.Log.Infof("building %s (%d/%d)", target, i+1, len(platforms))
		built, err := buildImage(ctx, p, target)
		if err != nil {
			return nil, fmt.Errorf("%w (building %s)", err, target)
		}
		closers = append(closers, built.close)
		images = append(images, p.client.MountFrom(built.image, built.mountSources))
		metadata = append(metadata, platformMetadata(*target, built.metadata)...)
	}
	index, err := imageIndex(images, platforms, p.params.ManifestFormat)
	if err != nil {
		return nil, err
	}
	digests, err := platformDigests(index)
	if err != nil {
		return nil, err
	}
	seconds := time.Since(start).Seconds()
	p.env.Log.Infof("built %s in %.1fs", platformCount(len(platforms)), seconds)
	metadata = append(append(digests, api.MetadataField{Name: "build_seconds", Value: strconv.FormatFloat(seconds, 'f', 1, 64)}), metadata...)
	return &outImage{taggable: index, platforms: len(images), size: func() (int64, error) { return indexSize(images) }, metadata: metadata, close: closeAll}, nil
}

// platformCount is "1 platform", "2 platforms".
func platformCount(n int) string {
	if n == 1 {
		return "1 platform"
	}
	return strconv.Itoa(n) + " platforms"
}

// platformMetadata names a platform's build metadata after it: "linux/arm64 cache_hits".
func platformMetadata(p api.Platform, fields []api.MetadataField) []api.MetadataField {
	out := make([]api.MetadataField, 0, len(fields))
	for _, f := range fields {
		out = append(out, api.MetadataField{Name: p.String() + " " + f.Name, Value: f.Value})
	}
	return out
}

// imageIndex is the index of images, each described with its config's platform (the asked one
// where the config says nothing).
func imageIndex(images []v1.Image, platforms []api.Platform, format string) (v1.ImageIndex, error) {
	mediaType := types.OCIImageIndex
	if format == "docker" {
		mediaType = types.DockerManifestList
	}
	idx := mutate.IndexMediaType(empty.Index, mediaType)
	for i, img := range images {
		platform, err := configPlatform(img, platforms[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", platforms[i], err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: platform}})
	}
	return idx, nil
}

// configPlatform is the platform img's config names, filled in from asked where empty.
func configPlatform(img v1.Image, asked api.Platform) (*v1.Platform, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	p := &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if p.OS == "" || p.Architecture == "" {
		p = &v1.Platform{OS: asked.OS, Architecture: asked.Architecture, Variant: asked.Variant}
	}
	return p, nil
}

// platformDigests are one metadata field per platform of idx: "linux/arm64@sha256:…".
func platformDigests(idx v1.ImageIndex) ([]api.MetadataField, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var fields []api.MetadataField
	for _, d := range m.Manifests {
		if d.Platform != nil {
			fields = append(fields, api.MetadataField{Name: "platform", Value: d.Platform.String() + "@" + d.Digest.String()})
		}
	}
	return fields, nil
}

// mountTagSuffix follows a cache mount's tag for one platform of a multi-platform build
// ("-arm64", "-arm-v7"): the platforms' package caches hold different binaries.
func mountTagSuffix(target *api.Platform) string {
	if target == nil {
		return ""
	}
	return "-" + strings.Join(strings.Fields(target.Architecture+" "+target.Variant), "-")
}

// ensureEmulation makes RUN steps of target's architecture runnable here (QEMU through
// binfmt_misc), logging one line; nothing for a single-platform build, nor when no RUN step runs
// on target (every RUN is in stages built FROM --platform=$BUILDPLATFORM).
func ensureEmulation(target *api.Platform, model *dockerfile.Model, env Env) error {
	if target == nil {
		return nil
	}
	if !emulation.Native(runtime.GOARCH, target.Architecture) {
		if !model.RunsOnTarget() {
			env.Log.Infof("emulation: not needed for %s: no RUN step runs on it", target)
			return nil
		}
	}
	r, err := emulation.Binfmt{}.Ensure(runtime.GOARCH, target.Architecture)
	if err != nil {
		return fmt.Errorf("params.platforms: %w", err)
	}
	env.Log.Info(r.String(target.Architecture))
	if r.Warning != "" {
		env.Log.Warn(r.Warning)
	}
	return nil
}
