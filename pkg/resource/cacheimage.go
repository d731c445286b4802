package resource

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/build"
	"github.com/imagesmith/buildah-image-resource/pkg/cacheimage"
	"github.com/imagesmith/buildah-image-resource/pkg/cachekey"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// cachePlan is the cache side of a put's build: the keys of this build, and the cache image
// chosen among those the params name.
type cachePlan struct {
	plan   *cachekey.Plan // nil when the keys could not be computed
	record *cachekey.Record
	chosen *cacheimage.Candidate // nil when no cache image serves
	labels map[string]string
	closes []func()
}

// planCache computes the build's cache keys (no build), reads the cache images the params name
// (manifests and configs only), picks the best and reports per step what hits. It never fails
// the put: what it cannot do it reports and leaves out.
func planCache(ctx context.Context, p *put, opts build.Options, platform v1.Platform) *cachePlan {
	c := &cachePlan{}
	params, env := p.params, p.env
	labels, err := build.Labels(opts)
	if err != nil {
		env.Log.Warnf("cache: %v; building without cache keys", err)
		return c
	}
	c.labels = labels
	c.plan, err = cachekey.NewPlan(cachekey.Input{
		Model: opts.Model, DockerfilePath: opts.Dockerfile, ContextDir: opts.ContextDir,
		Format: manifestFormat(params), Squash: params.Squash, NoCacheStages: params.NoCacheStages,
		Images: identities(ctx, p, opts, platform),
	})
	if err != nil {
		env.Log.Warnf("cache: cannot compute cache keys: %v; building without cache", err)
		return c
	}
	c.record = cachekey.NewRecord(c.plan)
	if params.NoCache {
		return c
	}
	ttl, err := cacheTTL(params)
	if err != nil {
		env.Log.Warnf("cache: %v", err)
	}
	sources := c.sources(ctx, p, platform)
	if len(sources) == 0 {
		return c
	}
	c.chosen = cacheimage.Choose(c.plan, labels, sources, ttl, env.Log.Warnf)
	cacheimage.Report(env.Stderr, c.plan, c.chosen)
	return c
}

// allHit says the chosen image serves every step: nothing is built.
func (c *cachePlan) allHit() bool {
	return c.chosen != nil && c.chosen.Match.AllHit()
}

// reuse is the fast path: the cache image itself (or a new config over its layers when the
// labels differ) and the layers' mount sources.
func (c *cachePlan) reuse() (v1.Image, map[v1.Hash]string, error) {
	img, err := cacheimage.Reuse(c.chosen, c.labels, c.record)
	if err != nil {
		return nil, nil, err
	}
	return img, c.mountSources(), nil
}

// mountSources maps the chosen image's layers to the reference they can be mounted from.
func (c *cachePlan) mountSources() map[v1.Hash]string {
	sources := map[v1.Hash]string{}
	if c.chosen == nil || c.chosen.Image.Ref == "" {
		return sources
	}
	if m, err := c.chosen.Image.Image.Manifest(); err == nil {
		for _, l := range m.Layers {
			sources[l.Digest] = c.chosen.Image.Ref
		}
	}
	return sources
}

// forBuild is the part of the chosen image a build reuses: its first hits of the final stage,
// when the stage builds on an image (an earlier stage's image does not exist before the build).
func (c *cachePlan) forBuild(log func(string, ...any)) *build.CacheImage {
	if c.chosen == nil || c.chosen.Match.Hits < 2 {
		return nil
	}
	final := c.plan.Final()
	if final.Image == "" && final.Base != "scratch" {
		log("cache: the final stage builds on %s: its steps can hit only through cache_repo", final.Base)
		return nil
	}
	return &build.CacheImage{Image: c.chosen.Image.Image, Steps: c.chosen.Match.Hits - 1, From: final.Image, Ref: c.chosen.Source}
}

// stamp records the keys in the built image.
func (c *cachePlan) stamp(r *build.Result) (v1.Image, error) {
	if c.record == nil {
		return r.Image, nil
	}
	return cacheimage.Stamp(r.Image, c.record, r.Labels, r.ReplacedLabels)
}

// metadata is cache_hits, cache_source and cache_first_miss. After a build, the hits are the
// final stage's steps that did not run (and the FROM, when one did not).
func (c *cachePlan) metadata(r *build.Result) []api.MetadataField {
	if c.plan == nil {
		return nil
	}
	hits, firstMiss := cacheimage.Summary(c.plan, c.chosen)
	if r != nil && c.chosen != nil {
		n := finalStageHits(r.Steps)
		if n > 0 {
			n++ // the FROM
		}
		hits = fmt.Sprintf("%d/%d", n, len(c.plan.Final().Steps))
	}
	fields := []api.MetadataField{{Name: "cache_hits", Value: hits}}
	if c.chosen != nil {
		fields = append(fields, api.MetadataField{Name: "cache_source", Value: c.chosen.Source})
	}
	if firstMiss != "" {
		fields = append(fields, api.MetadataField{Name: "cache_first_miss", Value: firstMiss})
	}
	return fields
}

func (c *cachePlan) close() {
	for _, f := range c.closes {
		f()
	}
}

// finalStageHits counts the final stage's steps buildah's layer cache had.
func finalStageHits(steps []build.Step) int {
	n := 0
	for _, s := range steps {
		if s.Cached && s.Stage == s.Stages {
			n++
		}
	}
	return n
}

// sources are the cache images the params name, in the order they are tried: the cache: true
// image (repository:cache_tag), then cache_from's.
func (c *cachePlan) sources(ctx context.Context, put *put, platform v1.Platform) []cacheimage.Source {
	p, src, env := put.params, put.src, put.env
	var sources []cacheimage.Source
	if p.Cache {
		tag := p.CacheTag
		if tag == "" {
			tag = put.tags[0]
		}
		ref := src.Repository + ":" + tag
		sources = append(sources, cacheimage.Source{Name: ref, Open: func() (*cacheimage.Image, error) { return lookup(ctx, ref, platform, env) }})
	}
	for i, item := range p.CacheFrom {
		item := item
		path, err := volume.New(put.dir).Path(fmt.Sprintf("params.cache_from[%d]", i), item) // refused earlier by checkParamDirs
		if err != nil {
			sources = append(sources, cacheimage.Source{Name: item, Open: func() (*cacheimage.Image, error) { return nil, err }})
			continue
		}
		if info, err := os.Stat(path); err == nil && info.IsDir() {
			sources = append(sources, cacheimage.Source{Name: item, Open: func() (*cacheimage.Image, error) { return c.openDir(path, platform) }})
			continue
		}
		sources = append(sources, cacheimage.Source{Name: item, Open: func() (*cacheimage.Image, error) { return lookup(ctx, item, platform, env) }})
	}
	return sources
}

// openDir opens the image a get left in dir; its saved name, when it has one, is where its
// layers can be mounted from.
func (c *cachePlan) openDir(dir string, platform v1.Platform) (*cacheimage.Image, error) {
	a, err := imagefile.Open(dir, platform)
	if err != nil {
		return nil, err
	}
	c.closes = append(c.closes, func() { a.Close() })
	return &cacheimage.Image{Image: a.Image, Ref: a.Name}, nil
}

// lookup reads an image reference's manifest and config from its registry (an index's image for
// the platform).
func lookup(ctx context.Context, ref string, platform v1.Platform, env Env) (*cacheimage.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("not an image reference or a directory: %w", err)
	}
	client, err := registry.New(ctx, env.Registries, r.Context().Name(), env.Log, env.hideSent())
	if err != nil {
		return nil, err
	}
	f, err := client.Lookup(r.Identifier(), platform)
	if err != nil || f == nil {
		return nil, err
	}
	return &cacheimage.Image{Image: f.Image, Ref: ref}, nil
}

// identities identifies the images the Dockerfile names: loaded bases from their files, others
// from their registry (manifest and config only). One that cannot be read is left out: steps
// reading it never hit.
func identities(ctx context.Context, p *put, opts build.Options, platform v1.Platform) map[string]cachekey.Image {
	out := map[string]cachekey.Image{}
	for _, ref := range opts.Model.Images() {
		if _, done := out[ref.Normalized]; done {
			continue
		}
		img, err := resolveImage(ctx, p, opts, platform, ref.Normalized)
		if err != nil {
			p.env.Log.Warnf("cache: cannot identify %s: %v; the steps reading it will not hit", ref.Original, err)
			continue
		}
		if img == nil {
			continue
		}
		id, err := identity(img)
		if err == nil {
			id.ID, err = withStageImages(id.ID, opts.StageBases, ref.Normalized)
		}
		if err != nil {
			p.env.Log.Warnf("cache: cannot identify %s: %v; the steps reading it will not hit", ref.Original, err)
			continue
		}
		out[ref.Normalized] = id
	}
	return out
}

// withStageImages adds to id the config digests of the stage bases (images of other platforms,
// for FROM --platform stages) named normalized: a change of either image changes the keys.
func withStageImages(id string, stageBases []build.Base, normalized string) (string, error) {
	for _, b := range stageBases {
		if b.Image == nil || !slices.Contains(b.Names, normalized) {
			continue
		}
		config, err := b.Image.ConfigName()
		if err != nil {
			return "", err
		}
		id += " " + b.Platform + "=" + config.String()
	}
	return id, nil
}

// resolveImage is the loaded base with that name, else the registry's image (none offline).
func resolveImage(ctx context.Context, p *put, opts build.Options, platform v1.Platform, normalized string) (v1.Image, error) {
	for _, b := range opts.Bases {
		for _, n := range b.Names {
			if n == normalized && b.Image != nil {
				return b.Image, nil
			}
		}
	}
	if p.params.Offline {
		return nil, nil
	}
	found, err := lookup(ctx, normalized, platform, p.env)
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("not found")
	}
	return found.Image, nil
}

func identity(img v1.Image) (cachekey.Image, error) {
	id, err := img.ConfigName()
	if err != nil {
		return cachekey.Image{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return cachekey.Image{}, err
	}
	return cachekey.Image{ID: id.String(), Env: cfg.Config.Env, OnBuild: cfg.Config.OnBuild}, nil
}

// uncachedStageBuilt says no_cache_stages names a stage the build builds: buildah's cache-from
// cannot be limited to some stages, so cache_repo is then written but not read.
func uncachedStageBuilt(plan *cachekey.Plan, names []string) bool {
	if plan == nil {
		return len(names) > 0
	}
	for _, s := range plan.Stages {
		for _, n := range names {
			if strings.EqualFold(n, s.Name) {
				return true
			}
		}
	}
	return false
}

func manifestFormat(p api.OutParams) string {
	if p.ManifestFormat == "" {
		return "oci"
	}
	return p.ManifestFormat
}
