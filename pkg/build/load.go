package build

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"

	dockerarchive "github.com/containers/image/v5/docker/archive"
	"github.com/containers/image/v5/docker/reference"
	ociarchive "github.com/containers/image/v5/oci/archive"
	ocilayout "github.com/containers/image/v5/oci/layout"
	istorage "github.com/containers/image/v5/storage"
	"github.com/containers/image/v5/types"
	"github.com/containers/storage"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/sirupsen/logrus"
)

// loadBase puts a saved base into the store (no network) and names it under every name in
// b.Names.
func loadBase(ctx context.Context, store storage.Store, sys *types.SystemContext, b Base, log *logrus.Logger) error {
	start := time.Now()
	if len(b.Names) == 0 {
		return fmt.Errorf("loading base %s: no names", b.Path)
	}
	var err error
	if directlyStorable(b) {
		err = putBase(store, b)
	} else {
		err = copyBase(ctx, store, sys, b)
	}
	if err != nil {
		return fmt.Errorf("loading base %s from %s: %w", b.Names[0], b.Path, err)
	}
	log.Infof("loaded base %s in %.1fs", b.Names[0], time.Since(start).Seconds())
	return nil
}

// copyBase copies a saved base into the store with containers/image.
func copyBase(ctx context.Context, store storage.Store, sys *types.SystemContext, b Base) error {
	src, err := baseReference(b)
	if err != nil {
		return err
	}
	// Copy under a tagged name (a digested one would make storage check the
	// digest of a manifest that an archive may have rewritten), then add all.
	placeholder, err := reference.ParseNormalizedNamed(fmt.Sprintf("localhost/buildah-image-resource/base:%d", time.Now().UnixNano()))
	if err != nil {
		return err
	}
	dest, err := istorage.Transport.NewStoreReference(store, placeholder, "")
	if err != nil {
		return err
	}
	if err := copyImage(ctx, sys, dest, src, 0); err != nil { // local files: no link to share
		return err
	}
	img, err := istorage.Transport.GetStoreImage(store, dest)
	if err != nil {
		return fmt.Errorf("finding it in storage: %w", err)
	}
	if err := store.AddNames(img.ID, b.Names); err != nil {
		return fmt.Errorf("naming it: %w", err)
	}
	if err := store.RemoveNames(img.ID, []string{placeholder.String()}); err != nil {
		return fmt.Errorf("naming it: %w", err)
	}
	return nil
}

// baseReference returns the containers/image reference of a saved base.
func baseReference(b Base) (types.ImageReference, error) {
	switch b.Transport {
	case "oci-archive":
		return ociarchive.NewReference(b.Path, "")
	case "docker-archive":
		return dockerarchive.NewReference(b.Path, nil)
	case "oci":
		i, err := layoutIndex(b)
		if err != nil {
			return nil, err
		}
		return ocilayout.NewIndexReference(b.Path, i)
	}
	return nil, fmt.Errorf("unknown transport %q (want oci-archive, oci or docker-archive)", b.Transport)
}

// layoutIndex picks the entry of an OCI layout's index.json holding the
// base: the only one, the one with the base's digest, or the one for the
// running platform. An entry that is itself an index is resolved to the
// running platform by copy.Image.
func layoutIndex(b Base) (int, error) {
	idx, err := layout.ImageIndexFromPath(b.Path)
	if err != nil {
		return 0, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return 0, err
	}
	if len(m.Manifests) == 1 {
		return 0, nil
	}
	want := []string{b.Digest}
	if b.Image != nil {
		if d, err := b.Image.Digest(); err == nil {
			want = append(want, d.String())
		}
	}
	for i, desc := range m.Manifests {
		if slices.Contains(want, desc.Digest.String()) {
			return i, nil
		}
	}
	for i, desc := range m.Manifests {
		if p := desc.Platform; p != nil && p.OS == runtime.GOOS && p.Architecture == runtime.GOARCH {
			return i, nil
		}
	}
	return 0, fmt.Errorf("OCI layout %s holds %d images and none has digest %s or the platform %s/%s",
		b.Path, len(m.Manifests), b.Digest, runtime.GOOS, runtime.GOARCH)
}
