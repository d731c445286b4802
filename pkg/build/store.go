package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// pulledImages returns name -> digest of the named images in the store that
// the build pulled (not loaded bases, not the result).
func pulledImages(store storage.Store, resultID string, loaded map[string]string) map[string]string {
	pulled := map[string]string{}
	images, err := store.Images()
	if err != nil {
		return pulled
	}
	for _, img := range images {
		if img.ID == resultID || len(img.Digests) == 0 {
			continue
		}
		for _, n := range img.Names {
			if _, ok := loaded[n]; !ok && !strings.HasPrefix(n, "localhost/") {
				pulled[n] = img.Digests[0].String()
			}
		}
	}
	return pulled
}
