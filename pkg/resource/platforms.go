package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/emulation"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
)

// builtIndex is the image index of a multi-platform put; close removes every build's storage.
type builtIndex struct {
	index    v1.ImageIndex
	images   []v1.Image // one per platform, in params.platforms' order
	metadata []api.MetadataField
	closers  []func()
}

// close releases what the builds hold, last acquired first.
func (b *builtIndex) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// buildPlatforms builds the Dockerfile once per platform of params.platforms, one after the
// other (the builds share the process environment buildah reads, and a 2-core worker gains
// nothing from running them together), and gathers the images in an OCI index (a docker manifest
// list with manifest_format docker). Each image's layers are mountable as client says.
func buildPlatforms(ctx context.Context, dir string, req api.OutRequest, env Env, tag string, client *registry.Client) (_ *builtIndex, err error) {
	platforms := req.Params.Platforms
	out := &builtIndex{}
	defer func() {
		if err != nil {
			out.close()
		}
	}()
	start := time.Now()
	for i := range platforms {
		target := &platforms[i]
		env.Log.Infof("building %s (%d/%d)", target, i+1, len(platforms))
		built, err := buildImage(ctx, dir, req, env, tag, target)
		if err != nil {
			return nil, fmt.Errorf("%w (building %s)", err, target)
		}
		out.closers = append(out.closers, built.close)
		out.images = append(out.images, client.MountFrom(built.image, built.mountSources))
		out.metadata = append(out.metadata, platformMetadata(*target, built.metadata)...)
	}
	if out.index, err = imageIndex(out.images, platforms, req.Params.ManifestFormat); err != nil {
		return nil, err
	}
	seconds := time.Since(start).Seconds()
	env.Log.Infof("built %s in %.1fs", platformCount(len(platforms)), seconds)
	out.metadata = append([]api.MetadataField{{Name: "build_seconds", Value: strconv.FormatFloat(seconds, 'f', 1, 64)}}, out.metadata...)
	return out, nil
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

// indexSize is the size of every image of idx, blobs shared between them counted once.
func indexSize(images []v1.Image) (int64, error) {
	seen := map[v1.Hash]bool{}
	var total int64
	for _, img := range images {
		m, err := img.Manifest()
		if err != nil {
			return 0, err
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				total += d.Size
			}
		}
	}
	return total, nil
}

// imageIsFor reports whether img's config names target's platform (or none at all).
func imageIsFor(img v1.Image, target api.Platform) bool {
	cfg, err := img.ConfigFile()
	if err != nil || cfg.Architecture == "" {
		return true // unreadable: the load reports it
	}
	got := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	return got.Satisfies(v1.Platform{OS: target.OS, Architecture: target.Architecture, Variant: target.Variant})
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

// stageBases are the loaded bases of the stages a build for target builds for another platform
// (FROM --platform=$BUILDPLATFORM ...): for each such platform, the load_base(s) images of that
// platform the stages name, and the stage images (normalized) no base holds for their platform,
// which the build pulls. Offline, such an image is an error.
func stageBases(dir string, p api.OutParams, model *dockerfile.Model, out *builtImage, env Env) ([]build.Base, []string, error) {
	cross := model.CrossStageImages()
	var bases []build.Base
	var pulls []string
	for _, platform := range slices.Sorted(maps.Keys(cross)) {
		stagePlatform, err := parsePlatform(platform)
		if err != nil {
			return nil, nil, fmt.Errorf("params.dockerfile: FROM --platform=%s (line %d): %w", platform, cross[platform][0].Line, err)
		}
		archives, closeAll, err := openBases(dir, p, &stagePlatform, env)
		if err != nil {
			return nil, nil, err
		}
		out.onClose(closeAll)
		forPlatform, uncovered, err := mapStageBases(cross[platform], archives, p.Offline, platform, env)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range archives {
			maps.Copy(out.mountSources, layerSources(a))
		}
		bases = append(bases, forPlatform...)
		for _, r := range uncovered {
			if !slices.Contains(pulls, r.Normalized) {
				pulls = append(pulls, r.Normalized)
			}
		}
	}
	return bases, pulls, nil
}

// mapStageBases gives each archive covering a stage image of platform the names the stages use,
// and returns the stage images no archive covers.
func mapStageBases(refs []dockerfile.Ref, archives []*imagefile.Archive, offline bool, platform string, env Env) ([]build.Base, []dockerfile.Ref, error) {
	described := make([]dockerfile.Base, len(archives))
	for i, a := range archives {
		described[i] = dockerfile.Base{Name: a.Name, Digest: a.Digest.String()}
	}
	mapping := dockerfile.MapBases(refs, described)
	if offline && len(mapping.Uncovered) > 0 {
		var missing []string
		for _, r := range mapping.Uncovered {
			missing = append(missing, fmt.Sprintf("%s (line %d)", r.Original, r.Line))
		}
		return nil, nil, fmt.Errorf("params.offline: no loaded base covers %s for its stage's platform %s", strings.Join(missing, ", "), platform)
	}
	names := map[int][]string{}
	for _, m := range mapping.Matches {
		if !slices.Contains(names[m.Base], m.Ref.Normalized) {
			names[m.Base] = append(names[m.Base], m.Ref.Normalized)
		}
		env.Log.Infof("FROM --platform=%s %s (line %d): using loaded base %s", platform, m.Ref.Original, m.Ref.Line, archives[m.Base].Name)
	}
	var bases []build.Base
	for _, i := range slices.Sorted(maps.Keys(names)) {
		a := archives[i]
		bases = append(bases, build.Base{Names: names[i], Digest: a.Digest.String(), Transport: string(a.Format), Path: a.Path, Image: a.Image, Platform: platform})
	}
	return bases, mapping.Uncovered, nil
}

// parsePlatform reads "os/arch[/variant]".
func parsePlatform(s string) (api.Platform, error) {
	var p api.Platform
	quoted, err := json.Marshal(s)
	if err != nil {
		return p, err
	}
	if err := p.UnmarshalJSON(quoted); err != nil {
		return p, fmt.Errorf("expected os/architecture[/variant], got %q", s)
	}
	return p, nil
}
