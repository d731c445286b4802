package imagefile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"golang.org/x/sync/errgroup"
)

// DefaultJobs is how many layers Stage fetches at a time when the caller does not say.
const DefaultJobs = 4

// Staged is an image whose blobs were fetched once into a private OCI blob directory, each
// checked against its digest and size; every file made from it reads them from there.
type Staged struct {
	Image v1.Image
	dir   string
}

// Close removes the staged blobs.
func (s *Staged) Close() error { return os.RemoveAll(s.dir) }

// Blobs is the staged blobs/ directory (blobs/sha256/<hex>), for linking into an OCI layout.
func (s *Staged) Blobs() string { return filepath.Join(s.dir, "blobs") }

// Stage fetches the config and every layer of img into a new directory in parent, at most jobs
// layers at a time (DefaultJobs when jobs < 1), each written to a temporary name and renamed only
// once its bytes matched the manifest's digest and size; the config is fetched alongside. The returned image has img's manifest
// and reads its blobs from the staged files. On failure nothing is left behind.
func Stage(img v1.Image, parent string, jobs int) (staged *Staged, err error) {
	dir, err := os.MkdirTemp(parent, ".blobs-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	manifest, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	store := dirBlobs(dir)
	layers, err := manifestLayers(img, manifest)
	if err != nil {
		return nil, err
	}
	if err := stageBlobs(store, manifest, img.RawConfigFile, layers, jobs); err != nil {
		return nil, err
	}
	local, err := partial.CompressedToImage(&storedImage{store: store, raw: raw, mediaType: mt, manifest: manifest})
	if err != nil {
		return nil, err
	}
	return &Staged{Image: local, dir: dir}, nil
}

// manifestLayers are the layers the manifest names, opened by digest: their fetch can start
// before the config is read (go-containerregistry's Layers reads the config first).
func manifestLayers(img v1.Image, manifest *v1.Manifest) ([]v1.Layer, error) {
	layers := make([]v1.Layer, len(manifest.Layers))
	for i, desc := range manifest.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		layers[i] = l
	}
	return layers, nil
}

// stageBlobs fetches the config and, alongside it, the layers, jobs at a time; the first
// failure stops the layers not started yet.
func stageBlobs(store dirBlobs, manifest *v1.Manifest, config func() ([]byte, error), layers []v1.Layer, jobs int) error {
	configDone := make(chan error, 1)
	go func() {
		configDone <- stageBlob(store, manifest.Config, func() (io.ReadCloser, error) {
			data, err := config()
			return io.NopCloser(bytes.NewReader(data)), err
		})
	}()
	var g errgroup.Group
	if jobs < 1 {
		jobs = DefaultJobs
	}
	g.SetLimit(jobs)
	for i, desc := range manifest.Layers {
		g.Go(func() error { return stageBlob(store, desc, layers[i].Compressed) })
	}
	layersErr := g.Wait()
	if err := <-configDone; err != nil {
		return err
	}
	return layersErr
}

// stageBlob writes one blob to blobs/<algorithm>/<hex> of store when it is not there yet.
func stageBlob(store dirBlobs, desc v1.Descriptor, open func() (io.ReadCloser, error)) error {
	if desc.Digest.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: unsupported digest algorithm", desc.Digest)
	}
	final := filepath.Join(string(store), filepath.FromSlash(blobPath(desc.Digest)))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), "."+desc.Digest.Hex+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	rc, err := open()
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, hash), io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); n != desc.Size || got != desc.Digest.Hex {
		return fmt.Errorf("blob %s: got %d bytes hashing to sha256:%s, the manifest lists %d bytes: refused", desc.Digest, n, got, desc.Size)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), final)
}
