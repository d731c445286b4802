package build

import (
	"errors"
	"fmt"
	"slices"

	"github.com/containers/storage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// storableLayerTypes are the layer media types storage can apply as they are.
var storableLayerTypes = []types.MediaType{
	types.OCILayer, types.OCIUncompressedLayer, types.OCILayerZStd,
	types.DockerLayer, types.DockerUncompressedLayer,
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
		if top, err = putBaseLayer(store, l, top); err != nil {
			return err
		}
	}
	return createBaseImage(store, b, top)
}

// putBaseLayer stores a layer on parent, unless storage has it already, and returns its ID.
func putBaseLayer(store storage.Store, l *knownLayer, parent string) (string, error) {
	id := chainID(parent, l.diffID)
	if _, err := store.Layer(id); err == nil {
		return id, nil
	}
	want, err := l.Digest()
	if err != nil {
		return "", fmt.Errorf("reading layer %s: %w", l.diffID, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", fmt.Errorf("reading layer %s: %w", want, err)
	}
	defer rc.Close()
	layer, _, err := store.PutLayer(id, parent, nil, "", false, nil, rc)
	if err != nil {
		return "", fmt.Errorf("storing layer %s: %w", want, err)
	}
	if layer.CompressedDigest.String() != want.String() || layer.UncompressedDigest.String() != l.diffID.String() {
		_ = store.DeleteLayer(id)
		return "", fmt.Errorf("layer %s (diffID %s) holds bytes with digest %s (diffID %s)",
			want, l.diffID, layer.CompressedDigest, layer.UncompressedDigest)
	}
	return id, nil
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
	manifestDigest := digest.FromBytes(manifestBytes)
	img, err := store.CreateImage(configDigest.Encoded(), b.Names, top, "", &storage.ImageOptions{
		CreationDate: cfg.Created.Time,
		Digest:       manifestDigest,
		BigData: []storage.ImageBigDataOption{
			{Key: configDigest.String(), Data: configBytes, Digest: configDigest},
			{Key: storage.ImageDigestManifestBigDataNamePrefix + "-" + manifestDigest.String(), Data: manifestBytes, Digest: manifestDigest},
			{Key: storage.ImageDigestBigDataKey, Data: manifestBytes, Digest: manifestDigest},
		},
	})
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
