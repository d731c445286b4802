package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/containers/image/v5/docker"
	"github.com/containers/image/v5/docker/reference"
	"github.com/containers/image/v5/manifest"
	"github.com/containers/image/v5/pkg/blobinfocache/none"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
	"github.com/containers/storage/pkg/archive"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// pulledStorageImages are the named images in the store that the build pulled: not the loaded
// bases (named in loaded), not the result, not buildah's unnamed intermediate images.
func pulledStorageImages(store storage.Store, resultID string, loaded map[string]string) []storage.Image {
	images, err := store.Images()
	if err != nil {
		return nil
	}
	var pulled []storage.Image
	for _, img := range images {
		if img.ID == resultID || len(img.Digests) == 0 {
			continue
		}
		for _, n := range img.Names {
			if _, ok := loaded[n]; !ok && !strings.HasPrefix(n, "localhost/") {
				pulled = append(pulled, img)
				break
			}
		}
	}
	return pulled
}

// pulledDigests returns name -> digest of the pulled images (see pulledStorageImages).
func pulledDigests(images []storage.Image, loaded map[string]string) map[string]string {
	pulled := map[string]string{}
	for _, img := range images {
		for _, n := range img.Names {
			if _, ok := loaded[n]; !ok && !strings.HasPrefix(n, "localhost/") {
				pulled[n] = img.Digests[0].String()
			}
		}
	}
	return pulled
}

// pulledLayers maps the diffIDs of the layers of the images the build pulled to those layers as
// the registry stores them (digest, size, media type), so that the result lists them as they
// are, not recompressed: a registry holding them then receives nothing for them. An image it
// cannot read is left out, and named in the error.
func pulledLayers(ctx context.Context, store storage.Store, sys *types.SystemContext, images []storage.Image) (map[v1.Hash]*pulledLayer, error) {
	byDiffID := map[v1.Hash]*pulledLayer{}
	var errs []error
	for _, img := range images {
		layers, err := pulledImageLayers(ctx, store, sys, img)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading pulled image %s: %w", img.Names[0], err))
			continue
		}
		for _, l := range layers {
			if _, seen := byDiffID[l.diffID]; !seen {
				byDiffID[l.diffID] = l
			}
		}
	}
	return byDiffID, errors.Join(errs...)
}

// pulledImageLayers reads a pulled image's manifest and config from storage and pairs its
// layers' descriptors with their diffIDs.
func pulledImageLayers(ctx context.Context, store storage.Store, sys *types.SystemContext, img storage.Image) ([]*pulledLayer, error) {
	manifestBytes, err := store.ImageBigData(img.ID, storage.ImageDigestBigDataKey)
	if err != nil {
		return nil, err
	}
	m, err := manifest.FromBlob(manifestBytes, manifest.GuessMIMEType(manifestBytes))
	if err != nil {
		return nil, err
	}
	if _, ok := m.(*manifest.Schema1); ok {
		return nil, nil // no config to pair layers with diffIDs: they are read from storage
	}
	configBytes, err := store.ImageBigData(img.ID, m.ConfigInfo().Digest.String())
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(configBytes)))
	if err != nil {
		return nil, err
	}
	infos := m.LayerInfos()
	if len(infos) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("the config lists %d diffIDs for %d layers", len(cfg.RootFS.DiffIDs), len(infos))
	}
	ref, err := pulledReference(img.Names, img.Digest)
	if err != nil {
		return nil, err
	}
	layers := make([]*pulledLayer, len(infos))
	for i, info := range infos {
		h, err := v1.NewHash(info.Digest.String())
		if err != nil {
			return nil, err
		}
		layers[i] = &pulledLayer{
			ctx: ctx, sys: sys, ref: ref, digest: h, size: info.Size,
			mediaType: ggcrtypes.MediaType(info.MediaType), diffID: cfg.RootFS.DiffIDs[i],
		}
	}
	return layers, nil
}

// pulledReference is the repository of the first registry name of a pulled image, by digest.
func pulledReference(names []string, d digest.Digest) (reference.Canonical, error) {
	for _, n := range names {
		if strings.HasPrefix(n, "localhost/") {
			continue
		}
		named, err := reference.ParseNormalizedNamed(n)
		if err != nil {
			continue
		}
		return reference.WithDigest(reference.TrimNamed(named), d)
	}
	return nil, fmt.Errorf("no registry name among %v", names)
}

// pulledLayer is a layer of a pulled image, listed as the registry it came from stores it. Its
// bytes are fetched from there again, only if the registry a push goes to lacks the blob.
type pulledLayer struct {
	ctx       context.Context
	sys       *types.SystemContext
	ref       reference.Canonical // the pulled image
	digest    v1.Hash
	size      int64
	mediaType ggcrtypes.MediaType
	diffID    v1.Hash
}

func (l *pulledLayer) Digest() (v1.Hash, error)                { return l.digest, nil }
func (l *pulledLayer) DiffID() (v1.Hash, error)                { return l.diffID, nil }
func (l *pulledLayer) Size() (int64, error)                    { return l.size, nil }
func (l *pulledLayer) MediaType() (ggcrtypes.MediaType, error) { return l.mediaType, nil }

// Source is the pulled image holding the layer, as a reference a push can mount from.
func (l *pulledLayer) Source() string { return l.ref.String() }

// Compressed fetches the layer from the registry it was pulled from.
func (l *pulledLayer) Compressed() (io.ReadCloser, error) {
	ref, err := docker.NewReference(l.ref)
	if err != nil {
		return nil, fmt.Errorf("layer %s of %s: %w", l.digest, l.ref, err)
	}
	src, err := ref.NewImageSource(l.ctx, l.sys)
	if err != nil {
		return nil, fmt.Errorf("layer %s of %s: %w", l.digest, l.ref, err)
	}
	rc, _, err := src.GetBlob(l.ctx, types.BlobInfo{Digest: digest.Digest(l.digest.String()), Size: l.size}, none.NoCache)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("fetching layer %s of %s: %w", l.digest, l.ref, err)
	}
	return &readCloser{Reader: rc, closers: []io.Closer{rc, src}}, nil
}

// Uncompressed decompresses the fetched layer.
func (l *pulledLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	d, err := archive.DecompressStream(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("decompressing layer %s of %s: %w", l.digest, l.ref, err)
	}
	return &readCloser{Reader: d, closers: []io.Closer{d, rc}}, nil
}

// readCloser reads from Reader and closes all of closers, in order.
type readCloser struct {
	io.Reader
	closers []io.Closer
}

func (r *readCloser) Close() error {
	var errs []error
	for _, c := range r.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
