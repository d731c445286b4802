package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/containers/buildah/define"
	"github.com/containers/image/v5/manifest"
	"github.com/containers/storage"
	"github.com/containers/storage/pkg/archive"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
)

// resultImage turns the built image in storage into a go-containerregistry
// image: buildah's config bytes as they are, base layers as the bases' own
// compressed blobs, layers of pulled images as their registry stores them, new
// layers compressed from storage on first use. It also returns the sources of
// the pulled layers (digest -> pulled image), for mounts.
func resultImage(ctx context.Context, store storage.Store, id string, opts Options, env *environment, pulled []storage.Image) (v1.Image, map[v1.Hash]string, error) {
	manifestBytes, err := store.ImageBigData(id, storage.ImageDigestBigDataKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading built image manifest: %w", err)
	}
	stored, err := manifest.FromBlob(manifestBytes, manifest.GuessMIMEType(manifestBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing built image manifest: %w", err)
	}
	config, err := store.ImageBigData(id, stored.ConfigInfo().Digest.String())
	if err != nil {
		return nil, nil, fmt.Errorf("reading built image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing built image config: %w", err)
	}

	img := &image{config: config, mediaType: types.OCIManifestSchema1, configMediaType: types.OCIConfigJSON}
	newLayerType := types.OCILayer
	if env.manifestType == define.Dockerv2ImageManifest {
		img.mediaType, img.configMediaType, newLayerType = types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	} else {
		var m v1.Manifest
		if err := json.Unmarshal(manifestBytes, &m); err == nil {
			img.annotations = m.Annotations
		}
	}

	baseLayers, err := knownLayersByDiffID(opts, img.mediaType)
	if err != nil {
		return nil, nil, err
	}
	storageLayers, err := layersByDiffID(store, id)
	if err != nil {
		return nil, nil, err
	}
	pulledByDiffID, err := pulledLayers(ctx, store, env.sys, pulled)
	if err != nil {
		opts.Log.Warnf("%v: its layers are pushed from storage, compressed again", err)
	}
	sources := map[v1.Hash]string{}
	for _, diffID := range cfg.RootFS.DiffIDs {
		if l, ok := baseLayers[diffID]; ok {
			img.layers = append(img.layers, l)
			continue
		}
		if l, ok := pulledLayerAs(pulledByDiffID[diffID], img.mediaType); ok {
			img.layers = append(img.layers, l)
			sources[l.digest] = l.Source()
			continue
		}
		layerID, ok := storageLayers[diffID]
		if !ok {
			return nil, nil, fmt.Errorf("built image: no layer in storage has diffID %s", diffID)
		}
		img.layers = append(img.layers, &storageLayer{store: store, id: layerID, diffID: diffID, mediaType: newLayerType, dir: env.layersDir})
	}
	v1Image, err := img.toV1()
	return v1Image, sources, err
}

// knownLayersByDiffID maps the diffIDs of the layers of the bases and of the cache image to
// those layers, with media types fit for the result's manifest type: a layer the result shares
// with them keeps its compressed bytes (and digest), so a registry holding it receives nothing.
// The diffIDs are the ones the configs list: nothing is decompressed.
func knownLayersByDiffID(opts Options, manifestType types.MediaType) (map[v1.Hash]v1.Layer, error) {
	byDiffID := map[v1.Hash]v1.Layer{}
	images := map[string]v1.Image{}
	for _, b := range append(slices.Clone(opts.Bases), opts.StageBases...) {
		if b.Image != nil {
			images[strings.TrimSpace(fmt.Sprintf("base %v %s", b.Names, b.Platform))] = b.Image
		}
	}
	if opts.CacheImage != nil {
		images["cache image "+opts.CacheImage.Ref] = opts.CacheImage.Image
	}
	for _, what := range slices.Sorted(maps.Keys(images)) {
		layers, err := layersWithDiffIDs(images[what])
		if err != nil {
			return nil, fmt.Errorf("reading layers of %s: %w", what, err)
		}
		for _, l := range layers {
			want, ok := layerMediaType(manifestType, l.mediaType)
			if !ok {
				continue // e.g. zstd in a docker manifest: use the layer from storage
			}
			l.mediaType = want
			if _, seen := byDiffID[l.diffID]; !seen {
				byDiffID[l.diffID] = l
			}
		}
	}
	return byDiffID, nil
}

// layersWithDiffIDs returns img's layers, each with the diffID its config lists.
func layersWithDiffIDs(img v1.Image) ([]*knownLayer, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if len(cfg.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("the config lists %d diffIDs for %d layers", len(cfg.RootFS.DiffIDs), len(layers))
	}
	known := make([]*knownLayer, len(layers))
	for i, l := range layers {
		mt, err := l.MediaType()
		if err != nil {
			return nil, err
		}
		known[i] = &knownLayer{Layer: l, diffID: cfg.RootFS.DiffIDs[i], mediaType: mt}
	}
	return known, nil
}

// pulledLayerAs is l listed with the media type fit for a manifest of type manifestType; false
// when l is nil or such a manifest cannot hold it.
func pulledLayerAs(l *pulledLayer, manifestType types.MediaType) (*pulledLayer, bool) {
	if l == nil {
		return nil, false
	}
	mt, ok := layerMediaType(manifestType, l.mediaType)
	if !ok {
		return nil, false
	}
	retyped := *l
	retyped.mediaType = mt
	return &retyped, true
}

// layerMediaType is the media type a base layer of type mt gets in a
// manifest of type manifestType; false if that manifest cannot hold it.
func layerMediaType(manifestType, mt types.MediaType) (types.MediaType, bool) {
	gzip := mt == types.DockerLayer || mt == types.OCILayer
	plain := mt == types.DockerUncompressedLayer || mt == types.OCIUncompressedLayer
	if manifestType == types.DockerManifestSchema2 {
		switch {
		case gzip:
			return types.DockerLayer, true
		case plain:
			return types.DockerUncompressedLayer, true
		}
		return "", false
	}
	switch {
	case gzip:
		return types.OCILayer, true
	case plain:
		return types.OCIUncompressedLayer, true
	case mt == types.OCILayerZStd:
		return mt, true
	}
	return "", false
}

// layersByDiffID maps the diffIDs of an image's layer chain in storage to
// the storage layer IDs.
func layersByDiffID(store storage.Store, id string) (map[v1.Hash]string, error) {
	img, err := store.Image(id)
	if err != nil {
		return nil, fmt.Errorf("reading built image: %w", err)
	}
	byDiffID := map[v1.Hash]string{}
	for layerID := img.TopLayer; layerID != ""; {
		l, err := store.Layer(layerID)
		if err != nil {
			return nil, fmt.Errorf("reading built image layer %s: %w", layerID, err)
		}
		if h, err := v1.NewHash(l.UncompressedDigest.String()); err == nil {
			byDiffID[h] = l.ID
		}
		layerID = l.Parent
	}
	return byDiffID, nil
}

// image is the built image; toV1 makes a v1.Image of it.
type image struct {
	config          []byte
	mediaType       types.MediaType
	configMediaType types.MediaType
	annotations     map[string]string
	layers          []v1.Layer

	once     sync.Once
	manifest []byte
	err      error
}

func (i *image) toV1() (v1.Image, error) {
	img, err := partial.CompressedToImage(i)
	if err != nil {
		return nil, err
	}
	return &v1Image{Image: img, core: i}, nil
}

func (i *image) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *image) MediaType() (types.MediaType, error) { return i.mediaType, nil }

// RawManifest computes the manifest once; this compresses the new layers.
func (i *image) RawManifest() ([]byte, error) {
	i.once.Do(func() { i.manifest, i.err = i.computeManifest() })
	return i.manifest, i.err
}

func (i *image) computeManifest() ([]byte, error) {
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     i.mediaType,
		Config: v1.Descriptor{
			MediaType: i.configMediaType,
			Size:      int64(len(i.config)),
			Digest:    sha256Hash(i.config),
		},
		Annotations: i.annotations,
	}
	for _, l := range i.layers {
		var d v1.Descriptor
		var err error
		if d.Digest, err = l.Digest(); err != nil {
			return nil, err
		}
		if d.Size, err = l.Size(); err != nil {
			return nil, err
		}
		if d.MediaType, err = l.MediaType(); err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, d)
	}
	return json.Marshal(m)
}

func (i *image) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return i.layerByDigest(h)
}

func (i *image) layerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.layers {
		if d, err := l.Digest(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("built image has no layer %s", h)
}

// v1Image hands out the layers themselves (the bases' own v1.Layer values),
// not partial's wrappers.
type v1Image struct {
	v1.Image
	core *image
}

func (i *v1Image) Layers() ([]v1.Layer, error) { return append([]v1.Layer(nil), i.core.layers...), nil }

func (i *v1Image) LayerByDigest(h v1.Hash) (v1.Layer, error) { return i.core.layerByDigest(h) }

func (i *v1Image) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range i.core.layers {
		if d, err := l.DiffID(); err == nil && d == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("built image has no layer with diffID %s", h)
}

// knownLayer is a layer of a base or of the cache image, with the diffID its image's config
// lists (asking the layer could decompress it) and the media type the result lists it under.
type knownLayer struct {
	v1.Layer
	diffID    v1.Hash
	mediaType types.MediaType
}

func (l *knownLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *knownLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// storageLayer is a new layer read from storage; it is gzip-compressed into
// a file on first need of its digest, size or compressed bytes.
type storageLayer struct {
	store     storage.Store
	id        string
	diffID    v1.Hash
	mediaType types.MediaType
	dir       string

	once   sync.Once
	path   string
	digest v1.Hash
	size   int64
	err    error
}

func (l *storageLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storageLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

func (l *storageLayer) Uncompressed() (io.ReadCloser, error) {
	uncompressed := archive.Uncompressed
	rc, err := l.store.Diff("", l.id, &storage.DiffOptions{Compression: &uncompressed})
	if err != nil {
		return nil, fmt.Errorf("reading layer %s from storage: %w", l.diffID, err)
	}
	return rc, nil
}

func (l *storageLayer) Digest() (v1.Hash, error) {
	err := l.compress()
	return l.digest, err
}

func (l *storageLayer) Size() (int64, error) {
	err := l.compress()
	return l.size, err
}

func (l *storageLayer) Compressed() (io.ReadCloser, error) {
	if err := l.compress(); err != nil {
		return nil, err
	}
	return os.Open(l.path)
}

func (l *storageLayer) compress() error {
	l.once.Do(func() { l.err = l.writeCompressed() })
	return l.err
}

// writeCompressed gzips the layer into a file, computing its digest and
// size, and checks that storage gave back the bytes of the diffID.
func (l *storageLayer) writeCompressed() error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.CreateTemp(l.dir, "layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("compressing layer %s: %w", l.diffID, err)
	}
	defer f.Close()
	compressedHash, counter := sha256.New(), &countingWriter{}
	zw := pgzip.NewWriter(io.MultiWriter(f, compressedHash, counter))
	uncompressedHash := sha256.New()
	if _, err := io.Copy(zw, io.TeeReader(rc, uncompressedHash)); err != nil {
		return fmt.Errorf("compressing layer %s: %w", l.diffID, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compressing layer %s: %w", l.diffID, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("compressing layer %s: %w", l.diffID, err)
	}
	if got := "sha256:" + hex.EncodeToString(uncompressedHash.Sum(nil)); got != l.diffID.String() {
		return fmt.Errorf("layer %s read back from storage has digest %s", l.diffID, got)
	}
	l.path, l.size = f.Name(), counter.n
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressedHash.Sum(nil))}
	return nil
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
