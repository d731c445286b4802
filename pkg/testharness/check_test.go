package testharness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkImage reads all of img and checks that every digest, size and diff
// ID matches its content.
func checkImage(t testing.TB, img v1.Image) {
	t.Helper()
	if err := verifyImage(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
}

// checkIndex checks the index's own digest and every image in it.
func checkIndex(t testing.TB, idx v1.ImageIndex) {
	t.Helper()
	raw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyHash(idx.Digest, raw); err != nil {
		t.Fatalf("index: %v", err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range manifest.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatalf("image %s of index: %v", desc.Digest, err)
		}
		if err := verifyImage(img); err != nil {
			t.Fatalf("image %s of index: %v", desc.Digest, err)
		}
	}
}

func verifyImage(img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if err := verifyHash(img.Digest, raw); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := verifyBlob(manifest.Config, bytes.NewReader(rawConfig)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if len(cfg.RootFS.DiffIDs) != len(manifest.Layers) {
		return fmt.Errorf("%d diff IDs for %d layers", len(cfg.RootFS.DiffIDs), len(manifest.Layers))
	}
	for i, desc := range manifest.Layers {
		layer, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		if err := verifyLayer(layer, desc, cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

func verifyLayer(layer v1.Layer, desc v1.Descriptor, diffID v1.Hash) error {
	compressed, err := layer.Compressed()
	if err != nil {
		return err
	}
	defer compressed.Close()
	if err := verifyBlob(desc, compressed); err != nil {
		return err
	}
	uncompressed, err := layer.Uncompressed()
	if err != nil {
		return err
	}
	defer uncompressed.Close()
	got, _, err := sha256Of(uncompressed)
	if err != nil {
		return err
	}
	if got != diffID {
		return fmt.Errorf("diff ID %s, content has %s", diffID, got)
	}
	return nil
}

func verifyHash(digest func() (v1.Hash, error), content []byte) error {
	want, err := digest()
	if err != nil {
		return err
	}
	got, _, err := sha256Of(bytes.NewReader(content))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("digest %s, content has %s", want, got)
	}
	return nil
}

func verifyBlob(desc v1.Descriptor, content io.Reader) error {
	got, size, err := sha256Of(content)
	if err != nil {
		return err
	}
	if got != desc.Digest || size != desc.Size {
		return fmt.Errorf("descriptor says %s (%d bytes), content is %s (%d bytes)", desc.Digest, desc.Size, got, size)
	}
	return nil
}

func sha256Of(r io.Reader) (v1.Hash, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return v1.Hash{}, n, err
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, nil
}
