package sandbox

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// copyTree copies the tree of from into to (which exists): directories, regular files and
// links, with owners, modes and file times. Other kinds (sockets, fifos) are left out.
func copyTree(from, to *os.Root) error {
	return fs.WalkDir(from.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case name == ".":
			return nil
		case d.IsDir():
			if err := to.Mkdir(name, 0o700); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := from.Readlink(name)
			if err != nil {
				return err
			}
			if err := to.Symlink(target, name); err != nil {
				return err
			}
			st := info.Sys().(*syscall.Stat_t)
			return to.Lchown(name, int(st.Uid), int(st.Gid))
		case info.Mode().IsRegular():
			if err := copyFile(from, to, name); err != nil {
				return err
			}
		default:
			return nil
		}
		return setMeta(to, name, info)
	})
}

func copyFile(from, to *os.Root, name string) error {
	in, err := from.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := to.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// setMeta gives name in root info's owner, mode and (for files) times.
func setMeta(root *os.Root, name string, info fs.FileInfo) error {
	st := info.Sys().(*syscall.Stat_t)
	if err := root.Lchown(name, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := root.Chmod(name, info.Mode()); err != nil {
		return err
	}
	if info.IsDir() {
		return nil
	}
	return root.Chtimes(name, atime(info), info.ModTime())
}

// copyBack replaces the content of the host directory dir with that of name in root.
func copyBack(root *os.Root, name, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(dir + "/" + e.Name()); err != nil {
			return err
		}
	}
	from, err := root.OpenRoot(name)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer to.Close()
	return copyTree(from, to)
}
