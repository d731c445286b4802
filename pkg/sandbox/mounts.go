package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// staged is what stands in for a step's mounts in its root file system, with how to take each
// back (latest first). Every path inside the root goes through root, so that a link a step
// left behind cannot lead outside it.
type staged struct {
	root *os.Root
	undo []func() error
	// standIns makes stand-ins for devices without trying to make the devices (tests).
	standIns bool
}

// stage puts stand-ins for the spec's mounts in place. On failure, what it put is in s for
// restore to take back.
func stage(spec *specs.Spec) (s *staged, err error) {
	return stageWith(spec, false)
}

func stageWith(spec *specs.Spec, standIns bool) (s *staged, err error) {
	root, err := os.OpenRoot(spec.Root.Path)
	if err != nil {
		return nil, err
	}
	s = &staged{root: root, standIns: standIns}
	for _, m := range spec.Mounts {
		if err := s.mount(m); err != nil {
			return s, fmt.Errorf("mount at %s: %w", m.Destination, err)
		}
	}
	return s, nil
}

// restore takes every stand-in back, latest first, and says what could not be.
func (s *staged) restore() error {
	if s == nil {
		return nil
	}
	var errs []error
	for i := len(s.undo) - 1; i >= 0; i-- {
		if err := s.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.undo = nil
	errs = append(errs, s.root.Close())
	return errors.Join(errs...)
}

func (s *staged) mount(m specs.Mount) error {
	dest := path.Clean("/" + m.Destination)
	name := inRoot(dest)
	switch {
	case dest == "/dev":
		return s.devices()
	case kernelFS(dest, m.Type):
		return nil
	case m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind"):
		info, err := os.Stat(m.Source)
		switch {
		case err != nil:
			return err
		case info.IsDir():
			return s.bindDir(m.Source, name, info, !slices.Contains(m.Options, "ro"))
		case info.Mode().IsRegular():
			return s.bindFile(m.Source, name, info)
		}
		return fmt.Errorf("%s is neither a file nor a directory, which only a mount could give", m.Source)
	case m.Type == "tmpfs":
		return s.emptyDir(name, tmpfsMode(m.Options))
	}
	return fmt.Errorf("a %s mount needs mounting, which this container may not do", m.Type)
}

// inRoot is an absolute, clean path as a name within the root.
func inRoot(dest string) string {
	if dest == "/" {
		return "."
	}
	return strings.TrimPrefix(dest, "/")
}

// kernelFS says whether a mount is one of the kernel's file systems, which a step here goes
// without (/proc and /sys stay as the image has them; /dev gets stand-ins).
func kernelFS(dest, typ string) bool {
	for _, p := range []string{"/proc", "/sys", "/dev"} {
		if dest == p || strings.HasPrefix(dest, p+"/") {
			return true
		}
	}
	switch typ {
	case "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue":
		return true
	}
	return false
}

// bindFile swaps the source's content, mode and owner into the file at name for the step, and
// puts the file back as it was, times included, so that the layer does not change.
func (s *staged) bindFile(src, name string, srcInfo fs.FileInfo) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	orig, err := s.root.Stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.undo = append(s.undo, func() error { return ignoreMissing(s.root.Remove(name)) })
		if err := s.root.WriteFile(name, data, 0o600); err != nil {
			return err
		}
		return setMeta(s.root, name, srcInfo)
	case err != nil:
		return err
	case !orig.Mode().IsRegular():
		return fmt.Errorf("%s in the step's root is not a regular file", name)
	}
	old, err := s.root.ReadFile(name)
	if err != nil {
		return err
	}
	s.undo = append(s.undo, func() error {
		if err := s.root.WriteFile(name, old, 0); err != nil {
			return err
		}
		return setMeta(s.root, name, orig)
	})
	if err := s.root.WriteFile(name, data, 0); err != nil {
		return err
	}
	return setMeta(s.root, name, srcInfo)
}

func atime(info fs.FileInfo) time.Time {
	return time.Unix(info.Sys().(*syscall.Stat_t).Atim.Unix())
}

// bindDir puts the source directory at name for the step. A writable one (a cache mount) is
// moved in and out again when both are on one file system, else copied in and back; a
// read-only one (the context, another stage) is copied in, so the step cannot change it.
// What was at name is set aside meanwhile.
func (s *staged) bindDir(src, name string, srcInfo fs.FileInfo, writable bool) error {
	if err := s.setAside(name); err != nil {
		return err
	}
	if writable {
		err := s.renameAt(unix.AT_FDCWD, src, name, true)
		if err == nil {
			s.undo = append(s.undo, func() error { return s.renameAt(unix.AT_FDCWD, src, name, false) })
			return nil
		}
		if !errors.Is(err, syscall.EXDEV) {
			return err
		}
	}
	if err := s.root.Mkdir(name, 0o700); err != nil {
		return err
	}
	s.undo = append(s.undo, func() error { return s.root.RemoveAll(name) })
	if err := setMeta(s.root, name, srcInfo); err != nil {
		return err
	}
	dst, err := s.root.OpenRoot(name)
	if err != nil {
		return err
	}
	defer dst.Close()
	from, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer from.Close()
	if writable {
		s.undo = append(s.undo, func() error { return copyBack(s.root, name, src) })
	}
	return copyTree(from, dst)
}

// renameAt moves the host path across to name in the root (in), or back (out).
func (s *staged) renameAt(hostDir int, hostPath, name string, in bool) error {
	parent, err := s.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer parent.Close()
	if in {
		return unix.Renameat(hostDir, hostPath, int(parent.Fd()), path.Base(name))
	}
	return unix.Renameat(int(parent.Fd()), path.Base(name), hostDir, hostPath)
}

// setAside moves what is at name (if anything) to a hidden sibling until restore.
func (s *staged) setAside(name string) error {
	if _, err := s.root.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	hidden := path.Join(path.Dir(name), ".sandbox-aside-"+path.Base(name))
	if err := s.root.Rename(name, hidden); err != nil {
		return err
	}
	s.undo = append(s.undo, func() error { return s.root.Rename(hidden, name) })
	return nil
}

// emptyDir stands in for a tmpfs: an empty directory for the step, removed afterwards.
func (s *staged) emptyDir(name string, mode fs.FileMode) error {
	if err := s.setAside(name); err != nil {
		return err
	}
	s.undo = append(s.undo, func() error { return s.root.RemoveAll(name) })
	if err := s.root.Mkdir(name, 0o700); err != nil {
		return err
	}
	return s.root.Chmod(name, mode)
}

func tmpfsMode(options []string) fs.FileMode {
	for _, o := range options {
		if v, ok := strings.CutPrefix(o, "mode="); ok {
			if m, err := strconv.ParseUint(v, 8, 32); err == nil {
				return unixMode(uint32(m))
			}
		}
	}
	return fs.ModeDir | fs.ModeSticky | 0o777
}

func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	return mode
}

func (s *staged) names(dir string) (map[string]bool, error) {
	f, err := s.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names, nil
}

// removeNew removes from dir what was not there before.
func (s *staged) removeNew(dir string, before map[string]bool) error {
	now, err := s.names(dir)
	if err != nil {
		return ignoreMissing(err)
	}
	var errs []error
	for name := range now {
		if !before[name] {
			errs = append(errs, s.root.RemoveAll(path.Join(dir, name)))
		}
	}
	return errors.Join(errs...)
}

func ignoreMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
