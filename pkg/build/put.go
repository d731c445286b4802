package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/containers/image/v5/copy"
	"github.com/containers/image/v5/signature"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/imagesmith/buildah-image-resource/pkg/progress"
)

// storableLayerTypes are the layer media types storage can apply as they are.
var storableLayerTypes = []ggcrtypes.MediaType{
	ggcrtypes.OCILayer, ggcrtypes.OCIUncompressedLayer, ggcrtypes.OCILayerZStd,
	ggcrtypes.DockerLayer, ggcrtypes.DockerUncompressedLayer,
}

// directlyStorable says whether putBase can store b: an OCI archive or layout whose image
// go-containerregistry reads (its manifest as saved, its blobs in place), with layers storage
// can apply. Docker archives are not: their manifest is made up on reading.
func directlyStorable(b Base) bool {
	if b.Image == nil || (b.Transport != "oci-archive" && b.Transport != "oci") {
		return false
	}
	m, err := b.Image.Manifest()
	if err != nil {
		return false
	}
	for _, l := range m.Layers {
		if !slices.Contains(storableLayerTypes, l.MediaType) {
			return false
		}
	}
	return true
}

// putBase stores b.Image as containers/image's copy to storage would, but reading each
// compressed layer once, in place, straight into storage: the copy would first extract an
// archive to a temporary directory, then decompress every layer twice (once to check its
// diffID, once to apply it). Storage computes both digests of each layer while applying it;
// they are checked against the manifest's and the config's.
func putBase(store storage.Store, b Base) error {
	layers, err := layersWithDiffIDs(b.Image)
	if err != nil {
		return fmt.Errorf("reading layers: %w", err)
	}
	top := ""
	for _, l := range layers {
		if top, _, err = putLayer(store, l, l.diffID, top); err != nil {
			return err
		}
	}
	return createBaseImage(store, b, top)
}

// putLayer stores l, whose uncompressed digest is diffID, on parent from its compressed bytes,
// unless storage has that layer already, and returns its ID and the compressed bytes it read.
// Storage computes both digests while applying the layer; they are checked against l's.
func putLayer(store storage.Store, l v1.Layer, diffID v1.Hash, parent string) (string, int64, error) {
	id := chainID(parent, diffID)
	if _, err := store.Layer(id); err == nil {
		return id, 0, nil
	}
	want, err := l.Digest()
	if err != nil {
		return "", 0, fmt.Errorf("reading layer %s: %w", diffID, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", 0, fmt.Errorf("reading layer %s: %w", want, err)
	}
	defer rc.Close()
	var read atomic.Int64
	layer, _, err := store.PutLayer(id, parent, nil, "", false, nil, progress.Counting{ReadCloser: rc, N: &read})
	if err != nil {
		return "", read.Load(), fmt.Errorf("storing layer %s: %w", want, err)
	}
	if layer.CompressedDigest.String() != want.String() || layer.UncompressedDigest.String() != diffID.String() {
		_ = store.DeleteLayer(id)
		return "", read.Load(), fmt.Errorf("layer %s (diffID %s) holds bytes with digest %s (diffID %s)",
			want, diffID, layer.CompressedDigest, layer.UncompressedDigest)
	}
	return id, read.Load(), nil
}

// chainID is the storage ID containers/image gives a layer with diffID on parent.
func chainID(parent string, diffID v1.Hash) string {
	if parent == "" {
		return diffID.Hex
	}
	return digest.FromString(parent + "+" + diffID.Hex).Encoded()
}

// createBaseImage records b.Image on the top layer under b.Names, with its manifest and config
// as containers/image records them: the ID is the config digest.
func createBaseImage(store storage.Store, b Base, top string) error {
	manifestBytes, err := b.Image.RawManifest()
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	configBytes, err := b.Image.RawConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	m, err := b.Image.Manifest()
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	cfg, err := b.Image.ConfigFile()
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	configDigest := digest.FromBytes(configBytes)
	if configDigest.String() != m.Config.Digest.String() {
		return fmt.Errorf("config has digest %s, the manifest says %s", configDigest, m.Config.Digest)
	}
	img, err := storeImage(store, b.Names, top, cfg.Created.Time, manifestBytes, configBytes)
	if errors.Is(err, storage.ErrDuplicateID) {
		// Another base is the same image.
		return store.AddNames(configDigest.Encoded(), b.Names)
	}
	if err != nil {
		return fmt.Errorf("creating image: %w", err)
	}
	if img.TopLayer != top {
		return fmt.Errorf("storage made image %s on layer %s, not %s", img.ID, img.TopLayer, top)
	}
	return nil
}

// storeImage records an image on the top layer under names, with its manifest and config as
// containers/image records them: the ID is the config's digest. storage.ErrDuplicateID says an
// image with that ID is there already.
func storeImage(store storage.Store, names []string, top string, created time.Time, manifestBytes, configBytes []byte) (*storage.Image, error) {
	configDigest, manifestDigest := digest.FromBytes(configBytes), digest.FromBytes(manifestBytes)
	return store.CreateImage(configDigest.Encoded(), names, top, "", &storage.ImageOptions{
		CreationDate: created,
		Digest:       manifestDigest,
		BigData: []storage.ImageBigDataOption{
			{Key: configDigest.String(), Data: configBytes, Digest: configDigest},
			{Key: storage.ImageDigestManifestBigDataNamePrefix + "-" + manifestDigest.String(), Data: manifestBytes, Digest: manifestDigest},
			{Key: storage.ImageDigestBigDataKey, Data: manifestBytes, Digest: manifestDigest},
		},
	})
}

// copyImage copies src into storage at dest with containers/image, signatures unchecked (the
// sources are a get's files or registries the user named).
func copyImage(ctx context.Context, sys *types.SystemContext, dest, src types.ImageReference, downloads int) error {
	policy, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		return fmt.Errorf("signature policy: %w", err)
	}
	defer policy.Destroy()
	_, err = copy.Image(ctx, policy, dest, src, &copy.Options{SourceCtx: sys, DestinationCtx: sys, MaxParallelDownloads: uint(max(downloads, 0))})
	return err
}
