package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containers/image/v5/docker"
	"github.com/containers/image/v5/docker/reference"
	istorage "github.com/containers/image/v5/storage"
	"github.com/containers/storage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
)

// CacheImage is an earlier image of the same build whose leading instructions of the final stage
// are reused. Build makes buildah's layer cache hit them: before building, it creates in the
// storage the chain of intermediate images buildah looks for (one per instruction: the cache
// image's config with history and diff_ids cut after that instruction, and its layer as the top
// layer). Only the layers of the reused instructions are read from Image.
type CacheImage struct {
	Image v1.Image // a buildah build of this Dockerfile, not squashed
	Steps int      // instructions after the final stage's FROM that hit
	// From is the final stage's base image, normalized, as named in storage after the bases are
	// loaded; "" for scratch. It is pulled first when no loaded base provides it.
	From string
	Ref  string // where Image comes from, for the log
}

// baseInfo is what the intermediate images need of the final stage's base in storage.
type baseInfo struct {
	topLayer string
	history  []v1.History
	diffIDs  []v1.Hash
	env      []string
}

// seedCache creates the intermediate images for the first c.Steps instructions and returns the
// bytes of layers it read.
func seedCache(ctx context.Context, store storage.Store, env *environment, c *CacheImage, log *logrus.Logger) (int64, error) {
	start := time.Now()
	cfg, err := c.Image.ConfigFile()
	if err != nil {
		return 0, fmt.Errorf("reading cache image config: %w", err)
	}
	m, err := c.Image.Manifest()
	if err != nil {
		return 0, fmt.Errorf("reading cache image manifest: %w", err)
	}
	base, err := finalBase(ctx, store, env, c.From)
	if err != nil {
		return 0, err
	}
	steps, err := stepHistory(cfg, m, base, c.Steps)
	if err != nil {
		return 0, fmt.Errorf("cache image %s: %w", c.Ref, err)
	}
	layerIDs, read, err := putLayers(store, c.Image, m, cfg, base, steps)
	if err != nil {
		return read, fmt.Errorf("cache image %s: %w", c.Ref, err)
	}
	if err := createIntermediates(store, cfg, m, base, steps, layerIDs); err != nil {
		return read, fmt.Errorf("cache image %s: %w", c.Ref, err)
	}
	log.Infof("cache: prepared %d steps from %s (%d layers, %d bytes read) in %.1fs", len(steps), c.Ref, len(layerIDs), read, time.Since(start).Seconds())
	return read, nil
}

// finalBase finds the base in storage, pulling it when it is not there.
func finalBase(ctx context.Context, store storage.Store, env *environment, from string) (*baseInfo, error) {
	if from == "" {
		return &baseInfo{}, nil
	}
	img, err := store.Image(from)
	if errors.Is(err, storage.ErrImageUnknown) {
		if err := pullImage(ctx, store, env, from); err != nil {
			return nil, err
		}
		img, err = store.Image(from)
	}
	if err != nil {
		return nil, fmt.Errorf("finding base %s in storage: %w", from, err)
	}
	ref, err := istorage.Transport.ParseStoreReference(store, "@"+img.ID)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", from, err)
	}
	src, err := ref.NewImage(ctx, env.sys)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", from, err)
	}
	defer src.Close()
	oci, err := src.OCIConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("base %s: reading config: %w", from, err)
	}
	base := &baseInfo{topLayer: img.TopLayer, env: oci.Config.Env}
	for _, h := range oci.History {
		entry := v1.History{CreatedBy: h.CreatedBy, Author: h.Author, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			entry.Created = v1.Time{Time: *h.Created}
		}
		base.history = append(base.history, entry)
	}
	for _, d := range oci.RootFS.DiffIDs {
		h, err := v1.NewHash(d.String())
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", from, err)
		}
		base.diffIDs = append(base.diffIDs, h)
	}
	return base, nil
}

// pullImage copies a registry image into storage under its name, as buildah's pull would.
func pullImage(ctx context.Context, store storage.Store, env *environment, from string) error {
	named, err := reference.ParseNormalizedNamed(from)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", from, err)
	}
	src, err := docker.NewReference(named)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", from, err)
	}
	dest, err := istorage.Transport.NewStoreReference(store, named, "")
	if err != nil {
		return fmt.Errorf("pulling %s: %w", from, err)
	}
	if err := copyImage(ctx, env.sys, dest, src, env.downloads); err != nil {
		return fmt.Errorf("pulling %s: %w", from, err)
	}
	return nil
}

// stepHistory checks that the cache image is built on the base and returns the history entries
// of its first n instructions after the base.
func stepHistory(cfg *v1.ConfigFile, m *v1.Manifest, base *baseInfo, n int) ([]v1.History, error) {
	if len(cfg.History) < len(base.history)+n {
		return nil, fmt.Errorf("its history has %d entries, the base's %d, %d more are needed", len(cfg.History), len(base.history), n)
	}
	for i, h := range base.history {
		if !sameHistory(h, cfg.History[i]) {
			return nil, fmt.Errorf("its history entry %d is not the base's", i)
		}
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) || len(cfg.RootFS.DiffIDs) < len(base.diffIDs) {
		return nil, fmt.Errorf("its config lists %d layers, its manifest %d", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	for i, d := range base.diffIDs {
		if cfg.RootFS.DiffIDs[i] != d {
			return nil, fmt.Errorf("its layer %d is not the base's", i)
		}
	}
	steps := cfg.History[len(base.history) : len(base.history)+n]
	layers := 0
	for _, h := range steps {
		if !h.EmptyLayer {
			layers++
		}
	}
	if len(base.diffIDs)+layers > len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("its history names more layers than it has")
	}
	return steps, nil
}

func sameHistory(a, b v1.History) bool {
	return a.CreatedBy == b.CreatedBy && a.Author == b.Author && a.Comment == b.Comment &&
		a.EmptyLayer == b.EmptyLayer && a.Created.Equal(b.Created.Time)
}

// putLayers stores the layers the steps add, each on the previous one, straight from the
// cache image's compressed blobs.
func putLayers(store storage.Store, img v1.Image, m *v1.Manifest, cfg *v1.ConfigFile, base *baseInfo, steps []v1.History) ([]string, int64, error) {
	var ids []string
	var read int64
	parent := base.topLayer
	next := len(base.diffIDs)
	for _, h := range steps {
		if h.EmptyLayer {
			continue
		}
		l, err := img.LayerByDigest(m.Layers[next].Digest)
		if err != nil {
			return nil, read, fmt.Errorf("layer %s: %w", m.Layers[next].Digest, err)
		}
		id, n, err := putLayer(store, l, cfg.RootFS.DiffIDs[next], parent)
		read += n
		if err != nil {
			return nil, read, err
		}
		ids = append(ids, id)
		parent = id
		next++
	}
	return ids, read, nil
}

// createIntermediates creates one image per step, as buildah's commit of that step would have
// left it: the cache config cut after the step, on the step's top layer. The environment is the
// base's (buildah's commit adds the stage's ENVs to it), so that nothing a later instruction set
// leaks into a step that builds on it.
func createIntermediates(store storage.Store, cfg *v1.ConfigFile, m *v1.Manifest, base *baseInfo, steps []v1.History, layerIDs []string) error {
	top, layers, nextLayer := base.topLayer, len(base.diffIDs), 0
	for i, h := range steps {
		if !h.EmptyLayer {
			top, layers = layerIDs[nextLayer], layers+1
			nextLayer++
		}
		c := cfg.DeepCopy()
		c.History = cfg.History[:len(base.history)+i+1]
		c.RootFS.DiffIDs = cfg.RootFS.DiffIDs[:layers]
		c.Config.Env = base.env
		c.Config.Labels = nil
		if err := createImage(store, c, m, layers, top); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
	}
	return nil
}

func createImage(store storage.Store, cfg *v1.ConfigFile, m *v1.Manifest, layers int, top string) error {
	config, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	man := *m
	man.Annotations = nil
	man.Layers = m.Layers[:layers]
	man.Config.Digest, man.Config.Size = v1.Hash{Algorithm: "sha256", Hex: digest.FromBytes(config).Encoded()}, int64(len(config))
	manifestBytes, err := json.Marshal(man)
	if err != nil {
		return err
	}
	_, err = storeImage(store, nil, top, cfg.Created.Time, manifestBytes, config)
	if errors.Is(err, storage.ErrDuplicateID) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating intermediate image: %w", err)
	}
	return nil
}
