// Package extract is the resource's one routine for unpacking tar streams: the root filesystem of
// `in` (format: rootfs) and every cache mount restore go through it. Every path is resolved
// beneath the target through an os.Root, so no entry, symlink or hard link reaches outside it.
// Image layers are applied in order with their whiteouts, each layer's compressed bytes are
// checked against its digest, and the target appears only when every layer checked out.
// Owners (when running as root), full modes (setuid, setgid, sticky), xattrs and modification
// times are kept.
package extract

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/imagesmith/buildah-image-resource/pkg/checked"
)

// Layers unpacks the layers, in order, into dest, which must not exist yet or be empty. The work
// happens in a private directory beside dest that is renamed to dest only when every layer
// unpacked and its bytes matched its digest; on any failure nothing is left behind.
func Layers(layers []v1.Layer, dest string) (err error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	for i, l := range layers {
		if err := applyLayer(root, l); err != nil {
			return fmt.Errorf("layer %d/%d: %w", i+1, len(layers), err)
		}
	}
	if err := root.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}

// applyLayer unpacks one layer, reading its compressed stream to the end so that its digest
// covers every byte. A digest mismatch wins over any other error: it says why the bytes were bad.
func applyLayer(root *os.Root, l v1.Layer) error {
	digest, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return fmt.Errorf("%s: %w", digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("%s: %w", digest, err)
	}
	defer rc.Close()
	v, err := checked.NewReader(rc, digest, size)
	if err != nil {
		return err
	}
	plain, err := decompress(v)
	if err == nil {
		err = apply(root, plain, true)
		_, _ = io.Copy(io.Discard, plain)
		plain.Close()
	}
	_, _ = io.Copy(io.Discard, v)
	if verr := v.Check(); verr != nil {
		return verr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", digest, err)
	}
	return nil
}

// decompress reads gzip, zstd or plain tar, telling them apart by their first bytes.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return gz, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	default:
		return io.NopCloser(br), nil
	}
}

// apply unpacks a tar stream beneath root. With whiteouts, OCI whiteout entries delete what
// earlier layers put there instead of being unpacked.
func apply(root *os.Root, r io.Reader, whiteouts bool) error {
	tr := tar.NewReader(r)
	var dirs []*tar.Header // their times are set last: unpacking into a directory changes them
	written := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := clean(hdr.Name)
		if whiteouts {
			if done, err := whiteout(root, name, written); done || err != nil {
				if err != nil {
					return fmt.Errorf("%s: %w", hdr.Name, err)
				}
				continue
			}
		}
		if err := unpack(root, tr, hdr, name); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		written[name] = true
		hdr.Name = name
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, hdr)
		} else if err := setTimes(root, hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, hdr := range slices.Backward(dirs) {
		if err := setTimes(root, hdr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	return nil
}

// clean makes an entry name relative to the root: "." for the root itself, never ".." first.
func clean(name string) string {
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" {
		return "."
	}
	return p
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// whiteout applies name when it is a whiteout entry: .wh.x deletes x, .wh..wh..opq empties its
// directory of what earlier layers put there. It reports whether name was one.
func whiteout(root *os.Root, name string, written map[string]bool) (bool, error) {
	dir, base := path.Split(name)
	dir = clean(dir)
	if base == opaqueMarker {
		return true, opaque(root, dir, written)
	}
	if !strings.HasPrefix(base, whiteoutPrefix) {
		return false, nil
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." || strings.Contains(target, "/") {
		return true, errors.New("a whiteout that names no entry")
	}
	err := root.RemoveAll(path.Join(dir, target))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	return true, err
}

func opaque(root *os.Root, dir string, written map[string]bool) error {
	f, err := openDir(root, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if p := path.Join(dir, n); !written[p] {
			if err := root.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// unpack creates one entry. An existing entry of another kind (a symlink where a directory
// comes, say) is removed first, so nothing is ever written or changed through a symlink.
func unpack(root *os.Root, tr *tar.Reader, hdr *tar.Header, name string) error {
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if name != "." {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return unpackDir(root, hdr, name, mode)
	case tar.TypeReg, tar.TypeRegA:
		if sparse(hdr) {
			return errors.New("a sparse file: refused (its holes would be written out whole)")
		}
		if err := removeExisting(root, name, false); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		if err := finish(f, hdr, mode); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		if err := removeExisting(root, name, false); err != nil {
			return err
		}
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		return lchown(root, name, hdr)
	case tar.TypeLink:
		if err := removeExisting(root, name, false); err != nil {
			return err
		}
		return root.Link(clean(hdr.Linkname), name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return unpackNode(root, hdr, name, mode)
	default:
		return nil // pax global headers and the like carry no file
	}
}

func unpackDir(root *os.Root, hdr *tar.Header, name string, mode fs.FileMode) error {
	if name != "." {
		if err := removeExisting(root, name, true); err != nil {
			return err
		}
		if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	f, err := openDir(root, name)
	if err != nil {
		return err
	}
	defer f.Close()
	return finish(f, hdr, mode)
}

// unpackNode makes a device (as root only) or a fifo.
func unpackNode(root *os.Root, hdr *tar.Header, name string, mode fs.FileMode) error {
	kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
	if kind != unix.S_IFIFO && os.Geteuid() != 0 {
		return nil
	}
	if err := removeExisting(root, name, false); err != nil {
		return err
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	err := atParent(root, name, func(fd int, base string) error {
		return unix.Mknodat(fd, base, kind|uint32(mode.Perm()), int(dev))
	})
	if err != nil {
		return err
	}
	return lchown(root, name, hdr)
}

// sparse is a PAX-format GNU sparse file: a few bytes in the stream can stand for terabytes of
// holes. (The old GNU format has a type of its own, which unpack skips.)
func sparse(hdr *tar.Header) bool {
	for key := range hdr.PAXRecords {
		if strings.HasPrefix(key, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// removeExisting removes what is at name, unless it is a directory and keepDir is set.
func removeExisting(root *os.Root, name string, keepDir bool) error {
	info, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if keepDir && info.IsDir() {
		return nil
	}
	return root.RemoveAll(name)
}

// finish gives an open file or directory its owner, mode and xattrs, through its descriptor.
func finish(f *os.File, hdr *tar.Header, mode fs.FileMode) error {
	if os.Geteuid() == 0 {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil && !unmappable(err) {
			return err
		}
	}
	if err := f.Chmod(mode); err != nil { // after chown, which clears setuid and setgid
		return err
	}
	for key, value := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(value), 0); err != nil && !unsupported(err) {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}

func lchown(root *os.Root, name string, hdr *tar.Header) error {
	if os.Geteuid() != 0 {
		return nil
	}
	err := atParent(root, name, func(fd int, base string) error {
		return unix.Fchownat(fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	})
	if unmappable(err) {
		return nil
	}
	return err
}

// setTimes gives the entry (never what a symlink points to) the modification time of hdr, as
// its access time too. Hard links share their target's times.
func setTimes(root *os.Root, hdr *tar.Header) error {
	if hdr.ModTime.IsZero() || hdr.Typeflag == tar.TypeLink {
		return nil
	}
	if _, err := root.Lstat(hdr.Name); errors.Is(err, fs.ErrNotExist) {
		return nil // skipped: a device when not root, a pax header
	}
	ts := unix.NsecToTimespec(hdr.ModTime.UnixNano())
	return atParent(root, hdr.Name, func(fd int, base string) error {
		return unix.UtimesNanoAt(fd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// atParent runs fn on the directory holding name, opened beneath root, and name's last element:
// a *at system call there cannot leave root.
func atParent(root *os.Root, name string, fn func(fd int, base string) error) error {
	dir, err := openDir(root, path.Dir(name))
	if err != nil {
		return err
	}
	defer dir.Close()
	return fn(int(dir.Fd()), path.Base(name))
}

// openDir opens a directory beneath root; anything else (a fifo, a device an earlier entry made)
// fails at once instead of being opened.
func openDir(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY, 0)
}

// unmappable is a chown to an id this user namespace has no mapping for.
func unmappable(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM)
}

// unsupported is an xattr the file system or this process cannot set (security.* unprivileged).
func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM)
}
