package resource

import (
	"cmp"
	"context"
	"maps"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
)

// buildPlan is a put's build as decided before anything runs.
type buildPlan struct {
	// opts are the build's options: the Dockerfile's model, the build args and labels, the
	// loaded bases (and, for a foreign target, those of the stages built for another platform).
	opts  build.Options
	cache *cachePlan // the cache keys and the cache image chosen
	start time.Time  // when the build's own time starts: the cache's planning
}

// planBuild reads the put's build inputs and the Dockerfile's model for target, loads the bases
// that gets saved (every FROM naming one uses it, unchanged), refuses FROMs no base covers when
// offline, and computes the cache keys and chooses among the cache images the params name. What
// the plan holds open is released with out.
func planBuild(ctx context.Context, p *put, target *api.Platform, out *builtImage) (*buildPlan, error) {
	opts, err := buildOptions(p.dir, p.params, p.env, target)
	if err != nil {
		return nil, err
	}
	opts.MaxDownloads = cmp.Or(p.src.MaxConcurrentDownloads, imagefile.DefaultJobs)
	if err := checkParamDirs(p.dir, p.params); err != nil {
		return nil, err
	}
	bases, closeBases, err := openBases(p.dir, p.params, target, p.env)
	if err != nil {
		return nil, err
	}
	out.onClose(closeBases)
	if opts.Bases, err = mapBases(opts.Model, p.params, bases, p.env); err != nil {
		return nil, err
	}
	for _, base := range bases {
		maps.Copy(out.mountSources, layerSources(base))
	}
	if target != nil {
		if opts.StageBases, opts.StagePulls, err = stageBases(p.dir, p.params, opts.Model, out, p.env); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	cache := planCache(ctx, p, opts, platformOf(target))
	out.onClose(cache.close)
	return &buildPlan{opts: opts, cache: cache, start: start}, nil
}

// platformOf is target as go-containerregistry names it; the running platform when nil.
func platformOf(target *api.Platform) v1.Platform {
	if target == nil {
		return v1.Platform{OS: api.RunningPlatform().OS, Architecture: api.RunningPlatform().Architecture}
	}
	return v1.Platform{OS: target.OS, Architecture: target.Architecture, Variant: target.Variant}
}
