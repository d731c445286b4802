package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

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

// imageIsFor reports whether img's config names target's platform (or none at all).
func imageIsFor(img v1.Image, target api.Platform) bool {
	cfg, err := img.ConfigFile()
	if err != nil || cfg.Architecture == "" {
		return true // unreadable: the load reports it
	}
	got := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	return got.Satisfies(v1.Platform{OS: target.OS, Architecture: target.Architecture, Variant: target.Variant})
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
