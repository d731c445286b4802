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
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// Metadata is what Concourse needs to run a rootfs as a task image (metadata.json).
type Metadata struct {
	Env  []string `json:"env"`
	User string   `json:"user"`
}

// WriteRootfs unpacks the image's flattened filesystem into dir/rootfs and writes dir/metadata.json.
func WriteRootfs(dir string, img v1.Image) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	flat := mutate.Extract(img)
	defer flat.Close()
	if err := Untar(flat, root); err != nil {
		return fmt.Errorf("unpack rootfs: %w", err)
	}
	meta, err := json.Marshal(Metadata{Env: cfg.Config.Env, User: cfg.Config.User})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "metadata.json"), meta, 0o644)
}

// Untar unpacks a tar stream into root, with the modification times the tar gives. No entry may
// land outside root, through ".." or through a symlink unpacked earlier.
func Untar(r io.Reader, root string) error {
	tr := tar.NewReader(r)
	type unpacked struct {
		hdr    *tar.Header
		target string
	}
	var dirs []unpacked // their times are set last: unpacking into a directory changes them
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		target, err := inside(root, hdr.Name)
		if err != nil {
			return err
		}
		if err := unpackEntry(tr, hdr, root, target); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, unpacked{hdr, target})
		} else if err := setModTime(hdr, target); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	for _, d := range slices.Backward(dirs) {
		if err := setModTime(d.hdr, d.target); err != nil {
			return fmt.Errorf("%s: %w", d.hdr.Name, err)
		}
	}
	return nil
}

// setModTime gives target (not what a symlink points to) the modification time of hdr, as its
// access time too; an entry with none, or one unpackEntry skipped, is left as it is.
func setModTime(hdr *tar.Header, target string) error {
	switch {
	case hdr.ModTime.IsZero():
		return nil
	case hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeSymlink && hdr.Typeflag != tar.TypeLink:
		return nil
	}
	tv := unix.NsecToTimeval(hdr.ModTime.UnixNano())
	return unix.Lutimes(target, []unix.Timeval{tv, tv})
}

func unpackEntry(tr *tar.Reader, hdr *tar.Header, root, target string) error {
	mode := os.FileMode(hdr.Mode).Perm() | os.FileMode(hdr.Mode)&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		return os.Chmod(target, mode)
	case tar.TypeReg:
		os.Remove(target)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		os.Remove(target)
		return os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		source, err := inside(root, hdr.Linkname)
		if err != nil {
			return err
		}
		os.Remove(target)
		return os.Link(source, target)
	default:
		return nil // devices and fifos are not needed in a rootfs read by Concourse
	}
}

// inside resolves name below root, refusing paths that leave it, directly or through a symlink.
func inside(root, name string) (string, error) {
	clean := filepath.Clean("/" + name)
	target := filepath.Join(root, clean)
	parent, err := filepath.EvalSymlinks(filepath.Dir(target))
	if errors.Is(err, os.ErrNotExist) {
		return target, nil // not created yet, so no symlink on the way
	}
	if err != nil {
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	if parent != realRoot && !strings.HasPrefix(parent, realRoot+string(filepath.Separator)) {
		return "", fmt.Errorf("%s: leaves the root filesystem through a symlink", name)
	}
	return filepath.Join(parent, filepath.Base(target)), nil
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
