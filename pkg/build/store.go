package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containers/storage"
	"github.com/moby/sys/mountinfo"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// openStore opens a containers-storage under dir. driver "" tries overlay
// (its driver does a real mount test) and falls back to vfs.
func openStore(dir, driver string, log *logrus.Logger) (storage.Store, error) {
	candidates := []string{driver}
	if driver == "" {
		candidates = []string{"overlay", "vfs"}
	}
	var errs []error
	for _, d := range candidates {
		opts := storage.StoreOptions{
			GraphRoot:       filepath.Join(dir, "storage"),
			RunRoot:         filepath.Join(dir, "run"),
			GraphDriverName: d,
		}
		store, err := storage.GetStore(opts)
		if err == nil {
			log.Infof("storage driver: %s", d)
			return store, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", d, err))
		log.Debugf("storage driver %s unusable: %v", d, err)
		// Start the next candidate from empty directories.
		if err := removeAll(opts.GraphRoot); err != nil {
			return nil, err
		}
		if err := removeAll(opts.RunRoot); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("opening image storage: %w", errors.Join(errs...))
}

// removeAll removes dir after unmounting anything still mounted under it.
func removeAll(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("listing mounts under %s: %w", dir, err)
	}
	// Deepest first.
	slices.SortFunc(mounts, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmounting %s: %w", m.Mountpoint, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// fsTopdirFlag is FS_TOPDIR_FL (chattr +T) of linux/fs.h.
const fsTopdirFlag = 0x00020000

// spreadInodes asks ext4 to put each directory made directly in dir in a block group of its own
// (its allocator for top directories, chattr +T, which starts from a hash of the directory's
// name: give them random names). On ext4 without a journal, making a file skips, one by one,
// the free inodes of its group that were deleted in the last minutes: where builds come and go
// (a worker's /tmp), unpacking a base's thousands of files into such a group takes seconds, into
// a fresh group a fraction of one. Other file systems refuse or ignore the flag.
func spreadInodes(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return fmt.Errorf("reading the flags of %s: %w", dir, err)
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFlag)); err != nil {
		return fmt.Errorf("setting the top-directory flag of %s: %w", dir, err)
	}
	return nil
}
