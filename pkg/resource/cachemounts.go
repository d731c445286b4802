package resource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/cachemount"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// defaultCacheMountMax bounds a cache mount that is pushed when cache_mounts_max_size is not set.
const defaultCacheMountMax = 2 << 30

// cacheMounts keeps RUN --mount=type=cache directories across fresh workers: restored before the
// build from gets (cache_mounts_from) or cache_repo:mount-<id>, and pushed back after a
// successful build when their content changed.
type cacheMounts struct {
	mounts   []dockerfile.Mount
	restored map[string]v1.Hash // id -> content restored
	repo     *registry.Client   // nil without cache_repo
	tmpDir   string
	maxSize  int64
	suffix   string // appended to each mount's tag: one mount per platform of a multi-platform build
	env      Env
}

// restoreCacheMounts fills the cache mounts the params keep into tmpDir, buildah's TMPDIR for the
// build; tagSuffix follows each mount's tag in cache_repo. A mount with nothing saved starts empty; a failure to restore is a warning. no_cache does
// not drop them: as BuildKit's --no-cache, it reruns every step, and the reruns keep their caches.
func restoreCacheMounts(ctx context.Context, put *put, model *dockerfile.Model, tmpDir, tagSuffix string) (*cacheMounts, error) {
	p, env := put.params, put.env
	if p.CacheMounts == nil {
		return nil, nil
	}
	c := &cacheMounts{restored: map[string]v1.Hash{}, tmpDir: tmpDir, maxSize: defaultCacheMountMax, suffix: tagSuffix, env: env}
	if p.CacheMountsMaxSize != nil {
		c.maxSize = int64(*p.CacheMountsMaxSize)
	}
	for _, m := range model.CacheMounts() {
		if p.CacheMounts.Keeps(m.ID) {
			c.mounts = append(c.mounts, m)
		}
	}
	if p.CacheRepo != "" {
		var err error
		if c.repo, err = registry.New(ctx, env.Registries, p.CacheRepo, env.Log, env.hideSent()); err != nil {
			return nil, fmt.Errorf("params.cache_repo: %w", err)
		}
	}
	fromGets := c.openGets(put.dir, p.CacheMountsFrom)
	for _, m := range c.mounts {
		start := time.Now()
		img, from := fromGets[m.ID], "a get"
		if img == nil {
			img, from = c.fromRepo(m), c.repoRef(m)
		}
		if img == nil {
			env.Log.Infof("cache mount %s: nothing saved yet, starting empty", m.ID)
			continue
		}
		if size, err := imageSize(img); err != nil || size > c.maxSize {
			env.Log.Warnf("cache mount %s: %s is larger than cache_mounts_max_size (%s) or unreadable; starting empty", m.ID, from, progress.Size(c.maxSize))
			continue
		}
		content, err := cachemount.Restore(img, cachemount.Dir(tmpDir, m))
		if err != nil {
			env.Log.Warnf("cache mount %s: cannot restore from %s: %v; starting empty", m.ID, from, err)
			os.RemoveAll(cachemount.Dir(tmpDir, m))
			continue
		}
		c.restored[m.ID] = content
		env.Log.Infof("cache mount %s: restored %s from %s in %.1fs", m.ID, sizeOf(img), from, time.Since(start).Seconds())
	}
	return c, nil
}

// openGets reads the cache mount images of cache_mounts_from, by mount id.
func (c *cacheMounts) openGets(dir string, dirs []string) map[string]v1.Image {
	images := map[string]v1.Image{}
	for i, d := range dirs {
		path, err := volume.New(dir).Path(fmt.Sprintf("params.cache_mounts_from[%d]", i), d) // refused earlier by checkParamDirs
		if err != nil {
			c.env.Log.Warnf("%v; ignored", err)
			continue
		}
		a, err := imagefile.Open(path, v1.Platform{})
		if err != nil {
			c.env.Log.Warnf("params.cache_mounts_from: %s: %v; ignored", d, err)
			continue
		}
		if id := cachemount.MountID(a.Image); id != "" {
			images[id] = a.Image
		} else {
			c.env.Log.Warnf("params.cache_mounts_from: %s holds no cache mount; ignored", d)
		}
	}
	return images
}

func (c *cacheMounts) repoRef(m dockerfile.Mount) string {
	if c.repo == nil {
		return ""
	}
	return c.repo.Name() + ":" + c.tag(m)
}

// tag is the mount's tag in cache_repo: its own, then the suffix, at most 128 characters.
func (c *cacheMounts) tag(m dockerfile.Mount) string {
	tag := cachemount.Tag(m)
	return tag[:min(len(tag), 128-len(c.suffix))] + c.suffix
}

func (c *cacheMounts) fromRepo(m dockerfile.Mount) v1.Image {
	if c.repo == nil {
		return nil
	}
	desc, err := c.repo.Head(c.tag(m))
	if err != nil || desc == nil {
		if err != nil {
			c.env.Log.Warnf("cache mount %s: %v", m.ID, err)
		}
		return nil
	}
	fetched, err := c.repo.Get(desc.Digest.String(), v1.Platform{})
	if err != nil {
		c.env.Log.Warnf("cache mount %s: %v", m.ID, err)
		return nil
	}
	return fetched.Image
}

// save pushes each mount whose content changed; it runs while the image is pushed. Its failures
// are warnings: the image is built.
func (c *cacheMounts) save() {
	if c == nil {
		return
	}
	for _, m := range c.mounts {
		dir := cachemount.Dir(c.tmpDir, m)
		if _, err := os.Stat(dir); err != nil {
			continue // the step ran from the layer cache: the mount was not used
		}
		start := time.Now()
		packed, err := cachemount.Pack(dir, c.tmpDir, m, c.maxSize)
		switch {
		case errors.Is(err, cachemount.ErrTooBig):
			c.env.Log.Warnf("cache mount %s: %v (params.cache_mounts_max_size): not saved", m.ID, err)
			continue
		case err != nil:
			c.env.Log.Warnf("cache mount %s: %v: not saved", m.ID, err)
			continue
		case packed.Content == c.restored[m.ID]:
			c.env.Log.Infof("cache mount %s: unchanged, not pushed", m.ID)
			continue
		case c.repo == nil:
			continue
		}
		if _, err := c.repo.Push(packed.Image, []string{c.tag(m)}, nil); err != nil {
			c.env.Log.Warnf("cache mount %s: push: %v", m.ID, err)
			continue
		}
		c.env.Log.Infof("cache mount %s: saved %s to %s in %.1fs", m.ID, progress.Size(packed.Size), c.repoRef(m), time.Since(start).Seconds())
	}
}

func sizeOf(img v1.Image) string {
	size, err := imageSize(img)
	if err != nil {
		return "?"
	}
	return progress.Size(size)
}
