package resource

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
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

// buildImage builds the put's Dockerfile for target (the running platform, with no platform
// choice made, when nil): it plans the build (plan.go), and then either reuses a cache image that
// has every step (nothing runs) or builds with buildah, reusing the steps that hit.
func buildImage(ctx context.Context, p *put, target *api.Platform) (_ *builtImage, err error) {
	out := &builtImage{mountSources: map[v1.Hash]string{}}
	defer func() {
		if err != nil {
			out.close()
		}
	}()
	plan, err := planBuild(ctx, p, target, out)
	if err != nil {
		return nil, err
	}
	if plan.cache.allHit() {
		return reuseImage(plan, out, p.env)
	}
	return runBuild(ctx, p, target, plan, out)
}

// reuseImage is the put of a build whose every step the chosen cache image has: that image.
func reuseImage(plan *buildPlan, out *builtImage, env Env) (*builtImage, error) {
	img, mounts, err := plan.cache.reuse()
	if err != nil {
		return nil, err
	}
	maps.Copy(out.mountSources, mounts)
	seconds := time.Since(plan.start).Seconds()
	env.Log.Infof("built in %.1fs: every step from the cache image %s, nothing ran", seconds, plan.cache.chosen.Source)
	out.image = img
	out.metadata = append([]api.MetadataField{{Name: "build_seconds", Value: strconv.FormatFloat(seconds, 'f', 1, 64)}}, plan.cache.metadata(nil)...)
	return out, nil
}

// runBuild builds with buildah in a private work dir: with the plan's cache image and
// cache_repo, the build secrets, the cache mounts restored (and saved again while the image is
// pushed) and, for a foreign target, emulation.
func runBuild(ctx context.Context, p *put, target *api.Platform, plan *buildPlan, out *builtImage) (*builtImage, error) {
	opts := plan.opts
	if err := withCache(&opts, plan.cache, p.params, p.env); err != nil {
		return nil, err
	}
	maps.Copy(out.mountSources, plan.cache.mountSources())
	workDir, err := os.MkdirTemp("", "buildah-image-resource-")
	if err != nil {
		return nil, fmt.Errorf("create build directory: %w", err)
	}
	out.onClose(func() { os.RemoveAll(workDir) })
	opts.WorkDir, opts.TempDir = workDir, filepath.Join(workDir, "tmp")
	opts.VolumeDir = p.dir // the storage goes there when workDir is on overlayfs (a Concourse container's /)
	if opts.Secrets, err = writeSecrets(p.dir, workDir, p.params.Secrets, p.env); err != nil {
		return nil, err
	}
	mounts, err := restoreCacheMounts(ctx, p, opts.Model, opts.TempDir, mountTagSuffix(target))
	if err != nil {
		return nil, err
	}
	if err := ensureEmulation(target, opts.Model, p.env); err != nil {
		return nil, err
	}
	result, err := build.Build(ctx, opts)
	if err != nil {
		return nil, p.env.Registries.Explain(err)
	}
	maps.Copy(out.mountSources, result.LayerSources) // layers of pulled FROM images
	out.onClose(func() {
		if err := result.Close(); err != nil {
			p.env.Log.Warnf("remove build storage: %v", err)
		}
	})
	saved := make(chan struct{}) // the cache mounts are saved while the image is pushed
	go func() { defer close(saved); mounts.save() }()
	out.onClose(func() { <-saved })
	if out.image, err = plan.cache.stamp(result); err != nil {
		return nil, err
	}
	seconds := time.Since(plan.start).Seconds()
	p.env.Log.Infof("built in %.1fs", seconds)
	out.metadata = append(buildMetadata(result, seconds), plan.cache.metadata(result)...)
	return out, nil
}

// withCache sets the build's cache options: the chosen cache image's hits, and cache_repo.
func withCache(opts *build.Options, cached *cachePlan, p api.OutParams, env Env) error {
	opts.CacheImage = cached.forBuild(env.Log.Infof)
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
