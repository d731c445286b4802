package imagefile

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/extract"
)

// Metadata is what Concourse needs to run a rootfs as a task image (metadata.json), with the
// entrypoint and command registry-image-resource adds.
type Metadata struct {
	Env        []string `json:"env"`
	User       string   `json:"user"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
}

// WriteMetadata writes dir/metadata.json from the image's config.
func WriteMetadata(dir string, img v1.Image) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	c := cfg.Config
	meta, err := json.Marshal(Metadata{Env: c.Env, User: c.User, Entrypoint: c.Entrypoint, Cmd: c.Cmd})
	if err != nil {
		return err
	}
	return writeAtomically(filepath.Join(dir, "metadata.json"), func(w io.Writer) error {
		_, err := w.Write(meta)
		return err
	})
}

// WriteRootfs unpacks the image's layers into dir/rootfs and writes dir/metadata.json. rootfs/
// appears only when every layer unpacked and matched its digest (see package extract).
func WriteRootfs(dir string, img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("list layers: %w", err)
	}
	if err := extract.Layers(layers, filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("unpack rootfs: %w", err)
	}
	return WriteMetadata(dir, img)
}

// Import makes a one-layer image of a root filesystem tarball (import_file), for the running platform.
func Import(path string) (v1.Image, error) {
	if err := checkTar(path); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("read rootfs tarball %s: %w", path, err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = runtime.GOOS, runtime.GOARCH
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cfg)
}

// checkTar makes sure path is a tar archive, gzipped or not, with at least one entry.
func checkTar(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read rootfs tarball %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	buffered := bufio.NewReader(f)
	var r io.Reader = buffered
	if magic, _ := buffered.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(buffered)
		if err != nil {
			return fmt.Errorf("%s: a broken gzip stream: %w", path, err)
		}
		r = gz
	}
	if _, err := tar.NewReader(r).Next(); err != nil {
		return fmt.Errorf("%s: expected a tar archive of a root filesystem: %v", path, err)
	}
	return nil
}
