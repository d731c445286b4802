package imagefile

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// WriteRootfsTar writes dir/rootfs.tar (docker-image-resource's rootfs: true): a tar of the
// unpacked dir/rootfs, as `docker export` gives a container's filesystem. rootfs/ exists only
// when every layer matched its digest (see WriteRootfs), so the tar holds checked content only.
// Owners, modes, times, symlinks, devices and hard links (as links) are kept; sockets are left
// out. The file appears only when whole.
func WriteRootfsTar(dir string) error {
	root := filepath.Join(dir, "rootfs")
	return writeAtomically(filepath.Join(dir, "rootfs.tar"), func(w io.Writer) error {
		tw := tar.NewWriter(w)
		links := map[fileID]string{}
		err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
			if err != nil || path == root {
				return err
			}
			return addEntry(tw, root, path, links)
		})
		if err != nil {
			return err
		}
		return tw.Close()
	})
}

// fileID is an inode: files sharing one are hard links of each other.
type fileID struct{ dev, ino uint64 }

// addEntry writes path, a file under root, never following a symlink.
func addEntry(tw *tar.Writer, root, path string, links map[fileID]string) error {
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if info.Mode()&fs.ModeSocket != 0 {
		return nil
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return err
	}
	hdr, err := entryHeader(info, path, filepath.ToSlash(rel))
	if err != nil {
		return err
	}
	if first, linked := hardLink(info, hdr.Name, links); linked {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		return tw.WriteHeader(hdr)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg {
		return copyContent(tw, path, hdr.Size)
	}
	return nil
}

func entryHeader(info fs.FileInfo, path, name string) (*tar.Header, error) {
	var target string
	if info.Mode()&fs.ModeSymlink != 0 {
		var err error
		if target, err = os.Readlink(path); err != nil {
			return nil, err
		}
	}
	hdr, err := tar.FileInfoHeader(info, target)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	hdr.Name, hdr.Uname, hdr.Gname, hdr.Format = name, "", "", tar.FormatPAX
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{} // when the get ran, not the image's
	if info.IsDir() {
		hdr.Name += "/"
	}
	return hdr, nil
}

// hardLink reports the name a regular file was first written under when it is a hard link of
// one already written, and records it otherwise.
func hardLink(info fs.FileInfo, name string, links map[fileID]string) (string, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || !info.Mode().IsRegular() || st.Nlink < 2 {
		return "", false
	}
	id := fileID{dev: uint64(st.Dev), ino: st.Ino}
	if first, seen := links[id]; seen {
		return first, true
	}
	links[id] = name
	return "", false
}

func copyContent(tw *tar.Writer, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if n, err := io.Copy(tw, io.LimitReader(f, size)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	} else if n != size {
		return fmt.Errorf("%s: changed while being written (%d of %d bytes)", path, n, size)
	}
	return nil
}
