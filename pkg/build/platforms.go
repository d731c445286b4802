package build

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containers/image/v5/manifest"
	"github.com/containers/storage"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// platformBase is a base and the platform it is loaded for ("" = the build's only one).
type platformBase struct {
	Base
	platform string
}

// listEntry is one platform's image of a name loaded for several platforms.
type listEntry struct {
	imageID   string
	digest    digest.Digest
	size      int64
	mediaType string
	platform  string
}

// loadBases loads every base into the store and returns name -> digest for Options.Bases. A
// name loaded for several platforms (a StageBases image beside the target's) names a manifest
// list in storage listing each platform's image, as a pull of a multi-platform image leaves it:
// buildah then finds, for each stage, the image of the platform the stage is built for.
func loadBases(ctx context.Context, store storage.Store, env *environment, opts Options) (map[string]string, error) {
	all := make([]platformBase, 0, len(opts.Bases)+len(opts.StageBases))
	for _, b := range opts.Bases {
		all = append(all, platformBase{b, opts.Platform})
	}
	for _, b := range opts.StageBases {
		all = append(all, platformBase{b, b.Platform})
	}
	shared := sharedNames(all)
	lists := map[string][]listEntry{}
	digests := map[string]string{}
	for i, pb := range all {
		entry, err := loadPlatformBase(ctx, store, env, pb, shared, i, opts)
		if err != nil {
			return nil, err
		}
		digest, err := baseDigest(pb.Base)
		if err != nil {
			return nil, err
		}
		for _, n := range pb.Names {
			if shared[n] {
				lists[n] = append(lists[n], *entry)
			}
			if _, set := digests[n]; !set || i < len(opts.Bases) {
				digests[n] = digest
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(lists)) {
		if err := storeList(store, n, lists[n]); err != nil {
			return nil, fmt.Errorf("loading base %s for %d platforms: %w", n, len(lists[n]), err)
		}
	}
	return digests, nil
}

// sharedNames are the names bases of more than one platform carry.
func sharedNames(all []platformBase) map[string]bool {
	platforms := map[string]map[string]bool{}
	for _, pb := range all {
		for _, n := range pb.Names {
			if platforms[n] == nil {
				platforms[n] = map[string]bool{}
			}
			platforms[n][pb.platform] = true
		}
	}
	shared := map[string]bool{}
	for n, p := range platforms {
		shared[n] = len(p) > 1
	}
	return shared
}

// loadPlatformBase loads pb under its names that no other platform's base carries; for the
// shared ones it returns the list entry of the image, which a placeholder name holds until then.
func loadPlatformBase(ctx context.Context, store storage.Store, env *environment, pb platformBase, shared map[string]bool, i int, opts Options) (*listEntry, error) {
	own := slices.DeleteFunc(slices.Clone(pb.Names), func(n string) bool { return shared[n] })
	if len(own) == len(pb.Names) {
		return nil, loadBase(ctx, store, env.sys, pb.Base, opts.Log)
	}
	placeholder := fmt.Sprintf("localhost/buildah-image-resource/platform-base:%d", i)
	named := pb.Base
	named.Names = append([]string{placeholder}, own...)
	if err := loadBase(ctx, store, env.sys, named, opts.Log); err != nil {
		return nil, err
	}
	return instance(store, placeholder, pb.platform)
}

// instance is the list entry of the image stored under name.
func instance(store storage.Store, name, platform string) (*listEntry, error) {
	img, err := store.Image(name)
	if err != nil {
		return nil, fmt.Errorf("finding loaded base %s: %w", name, err)
	}
	raw, err := store.ImageBigData(img.ID, storage.ImageDigestBigDataKey)
	if err != nil {
		return nil, fmt.Errorf("reading manifest of loaded base %s: %w", name, err)
	}
	return &listEntry{imageID: img.ID, digest: digest.FromBytes(raw), size: int64(len(raw)), mediaType: manifest.GuessMIMEType(raw), platform: platform}, nil
}

// storeList records an OCI index of entries in storage under name, as buildah's manifest lists
// are: the index, and where each instance is (instances.json).
func storeList(store storage.Store, name string, entries []listEntry) error {
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: ggcrtypes.OCIImageIndex}
	instances := map[digest.Digest]string{}
	for _, e := range entries {
		instances[e.digest] = e.imageID
		parts := append(strings.SplitN(e.platform, "/", 3), "", "")
		index.Manifests = append(index.Manifests, v1.Descriptor{
			MediaType: ggcrtypes.MediaType(e.mediaType), Size: e.size, Digest: v1.Hash{Algorithm: e.digest.Algorithm().String(), Hex: e.digest.Encoded()},
			Platform: &v1.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]},
		})
	}
	raw, err := json.Marshal(index)
	if err != nil {
		return err
	}
	instancesJSON, err := json.Marshal(instances)
	if err != nil {
		return err
	}
	d := digest.FromBytes(raw)
	_, err = store.CreateImage("", []string{name}, "", "", &storage.ImageOptions{
		Digest: d,
		BigData: []storage.ImageBigDataOption{
			{Key: storage.ImageDigestManifestBigDataNamePrefix + "-" + d.String(), Data: raw, Digest: d},
			{Key: storage.ImageDigestBigDataKey, Data: raw, Digest: d},
			{Key: "instances.json", Data: instancesJSON},
		},
	})
	return err
}
