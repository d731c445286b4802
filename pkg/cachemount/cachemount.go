// Package cachemount carries the content of RUN --mount=type=cache directories from one build to
// the next through a registry: a directory becomes a one-layer image (a deterministic tar, so
// unchanged content has the same digest), and such an image becomes a directory again.
package cachemount

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/extract"
)

// IDLabel names, in a cache image's config, the mount id it holds.
const IDLabel = "io.buildah-image-resource.cache-mount.id"

// ErrTooBig says a cache directory is larger than the bound it may be saved with.
var ErrTooBig = errors.New("larger than the bound")

// Dir is where buildah keeps mount m during a build whose TMPDIR is tmpDir: it names cache
// directories by a digest of the id and the owner.
func Dir(tmpDir string, m dockerfile.Mount) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s:%d:%d", m.ID, m.UID, m.GID))
	return filepath.Join(tmpDir, "buildah-cache-"+strconv.Itoa(os.Getuid()), hex.EncodeToString(sum[:])[:16])
}

var notTagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Tag is the tag a mount's cache image has in the cache repository: mount-<id>, made tag-safe.
func Tag(m dockerfile.Mount) string {
	tag := "mount-" + notTagChars.ReplaceAllString(m.ID, "-")
	if len(tag) > 128 {
		tag = tag[:128]
	}
	return tag
}

// Packed is a cache directory as an image, with its content digest (the layer's diff ID).
type Packed struct {
	Image   v1.Image
	Content v1.Hash
	Size    int64 // bytes of file content
}

// Pack makes a one-layer image of dir, writing the tar into tmpDir. It fails with ErrTooBig
// when the files hold more than maxSize bytes.
func Pack(dir, tmpDir string, m dockerfile.Mount, maxSize int64) (*Packed, error) {
	f, err := os.CreateTemp(tmpDir, "cache-mount-*.tar")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hash := sha256.New()
	size, err := writeTar(io.MultiWriter(f, hash), dir, maxSize)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(f.Name(), tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{IDLabel: m.ID}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	return &Packed{Image: img, Content: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(hash.Sum(nil))}, Size: size}, nil
}

// writeTar writes dir as a tar in lexical order with no access or change times and no
// directory modification times, so the same content makes the same bytes.
func writeTar(w io.Writer, dir string, maxSize int64) (int64, error) {
	tw := tar.NewWriter(w)
	var size int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr.Name, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), "", ""
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = info.ModTime().Truncate(time.Second), time.Time{}, time.Time{}
		if d.IsDir() {
			hdr.ModTime = time.Unix(0, 0) // changed by every file made and removed in it (lock files, partial downloads)
		}
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		if size += info.Size(); size > maxSize {
			return fmt.Errorf("%w of %d bytes", ErrTooBig, maxSize)
		}
		return copyFile(tw, path)
	})
	if err != nil {
		return 0, err
	}
	return size, tw.Close()
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Restore unpacks a cache image into dir, which must not exist yet, and returns its content
// digest. dir appears only when the layer unpacked and matched its digest (see package extract).
func Restore(img v1.Image, dir string) (v1.Hash, error) {
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	if len(layers) != 1 {
		return v1.Hash{}, fmt.Errorf("a cache mount image has one layer, this one %d", len(layers))
	}
	content, err := layers[0].DiffID()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return v1.Hash{}, err
	}
	return content, extract.Layers(layers, dir)
}

// MountID is the mount id a cache image holds, "" for another kind of image.
func MountID(img v1.Image) string {
	cfg, err := img.ConfigFile()
	if err != nil {
		return ""
	}
	return cfg.Config.Labels[IDLabel]
}
