package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// removeAll removes dir after unmounting anything still mounted under it. dir must be absolute
// (an empty one would name every mount).
func removeAll(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("removing %q: not an absolute path", dir)
	}
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
