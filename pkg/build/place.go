package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containers/storage"
	"golang.org/x/sys/unix"
)

// A Concourse resource container's root (/ and /tmp) is an overlayfs, which overlay's upper
// directories cannot live on: containers/storage falls back to vfs there, which copies the whole
// root file system for every step. openStorage then puts the storage on a file system that can
// hold them: the put's work dir (a bind mount of a worker volume) or a tmpfs of its own.

// storageDirPattern names the hidden directory the storage gets in Options.VolumeDir.
const storageDirPattern = ".buildah-image-resource-storage-*"

// placeKind says where a placement puts the graph root.
type placeKind int

const (
	inBuildDir placeKind = iota // under the build directory (today's place)
	inVolume                    // a hidden directory of Options.VolumeDir
	onTmpfs                     // a tmpfs mounted under the build directory
)

// placement is one way to try to open the storage: a driver at a place.
type placement struct {
	kind   placeKind
	driver string
}

// storageProbe is what openStorage asks of the machine; tests replace it.
type storageProbe struct {
	// onOverlayfs says whether dir is on an overlayfs.
	onOverlayfs func(dir string) (bool, error)
	// mountTmpfs mounts a private tmpfs at dir.
	mountTmpfs func(dir string) error
}

// hostProbe asks the kernel.
func hostProbe() storageProbe {
	return storageProbe{onOverlayfs: onOverlayfs, mountTmpfs: mountTmpfs}
}

// openedStorage is an open store and where it is.
type openedStorage struct {
	store storage.Store
	// root is the graph root; it is removed (after unmounting all below it) on Close. It may lie
	// outside the build directory.
	root string
}

// storagePlan lists the placements to try, best first, and why it is not just today's (overlay
// falling back to vfs under the build directory): "" when it is. volumeUnsuitable says why
// Options.VolumeDir cannot hold the storage ("" when it can).
func storagePlan(driver string, buildDirOnOverlayfs bool, volumeUnsuitable string) []placement {
	drivers := []string{driver}
	if driver == "" {
		drivers = []string{"overlay", "vfs"}
	}
	if !buildDirOnOverlayfs || driver == "vfs" {
		var plan []placement
		for _, d := range drivers {
			plan = append(plan, placement{inBuildDir, d})
		}
		return plan
	}
	var plan []placement
	if volumeUnsuitable == "" {
		plan = append(plan, placement{inVolume, "overlay"})
	}
	plan = append(plan, placement{onTmpfs, "overlay"})
	if driver == "" {
		plan = append(plan, placement{inBuildDir, "vfs"})
	}
	return plan
}

// openStorage opens the build's storage, its run root under dir. When dir is not on an overlayfs,
// or vfs is asked for, it goes under dir as it always did: overlay falling back to vfs. When it is,
// overlay goes in a hidden directory of opts.VolumeDir when that is suitable, else on a tmpfs
// mounted under dir, and vfs under dir is the last resort (unless overlay was asked for). It logs
// its choice in one line.
func openStorage(dir string, opts Options, probe storageProbe) (*openedStorage, error) {
	overlayfs, err := probe.onOverlayfs(dir)
	if err != nil {
		return nil, err
	}
	volumeUnsuitable := ""
	if overlayfs {
		volumeUnsuitable = unsuitableVolume(opts, probe)
	}
	var refusals []string
	var last error
	for _, p := range storagePlan(opts.StorageDriver, overlayfs, volumeUnsuitable) {
		opened, where, err := tryPlacement(dir, p, opts, probe)
		if err == nil {
			opts.Log.Info(storageLogLine(p.driver, where, dir, overlayfs, volumeUnsuitable, refusals))
			return opened, nil
		}
		opts.Log.Debugf("storage: %s %s unusable: %v", p.driver, where, err)
		refusals = append(refusals, fmt.Sprintf("%s %s failed: %s", p.driver, placeName(p.kind), firstLine(err)))
		last = fmt.Errorf("%s %s: %w", p.driver, where, err)
	}
	if len(refusals) > 1 {
		return nil, fmt.Errorf("opening image storage (%s): %w", strings.Join(refusals[:len(refusals)-1], "; "), last)
	}
	return nil, fmt.Errorf("opening image storage: %w", last)
}

// unsuitableVolume says why opts.VolumeDir cannot hold the storage, "" when it can: it must be
// given, not on an overlayfs (an input's copy-on-write volume, or the container's root), and not
// within the build context (the storage would become part of it).
func unsuitableVolume(opts Options, probe storageProbe) string {
	if opts.VolumeDir == "" {
		return "no work dir was given"
	}
	if within(opts.VolumeDir, opts.ContextDir) {
		return fmt.Sprintf("the work dir %s is within the build context", opts.VolumeDir)
	}
	overlayfs, err := probe.onOverlayfs(opts.VolumeDir)
	if err != nil {
		return err.Error()
	}
	if overlayfs {
		return fmt.Sprintf("the work dir %s is on overlayfs too", opts.VolumeDir)
	}
	return ""
}

// within says whether dir is parent or lies beneath it, symbolic links resolved.
func within(dir, parent string) bool {
	resolve := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	rel, err := filepath.Rel(resolve(parent), resolve(dir))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// tryPlacement opens the storage as p says and returns it with a phrase for the log saying where
// it is. On failure, everything it made is removed.
func tryPlacement(dir string, p placement, opts Options, probe storageProbe) (_ *openedStorage, where string, err error) {
	root, where, err := makeRoot(dir, p.kind, opts, probe)
	if err != nil {
		return nil, where, err
	}
	runRoot := filepath.Join(dir, "run")
	defer func() {
		if err != nil {
			err = withCleanup(err, removeAll(root), removeAll(runRoot))
		}
	}()
	store, err := storage.GetStore(storage.StoreOptions{GraphRoot: root, RunRoot: runRoot, GraphDriverName: p.driver})
	if err != nil {
		return nil, where, err
	}
	return &openedStorage{store: store, root: root}, where, nil
}

// makeRoot makes the graph root for a kind of placement and returns it with a phrase for the log.
func makeRoot(dir string, kind placeKind, opts Options, probe storageProbe) (root, where string, err error) {
	switch kind {
	case inVolume:
		if err := spreadInodes(opts.VolumeDir); err != nil {
			opts.Log.Debugf("storage: %v", err)
		}
		root, err := os.MkdirTemp(opts.VolumeDir, storageDirPattern)
		if err != nil {
			return "", "in the work dir", fmt.Errorf("creating the storage directory: %w", err)
		}
		return root, "in " + root, nil
	case onTmpfs:
		root := filepath.Join(dir, "tmpfs")
		if err := os.Mkdir(root, 0o700); err != nil {
			return "", "on a tmpfs", fmt.Errorf("creating the tmpfs mount point: %w", err)
		}
		if err := probe.mountTmpfs(root); err != nil {
			return "", "on a tmpfs", withCleanup(err, os.Remove(root))
		}
		return root, "on a tmpfs" + sizeNote(root) + " at " + root, nil
	default:
		root := filepath.Join(dir, "storage")
		return root, "in " + root, nil
	}
}

// storageLogLine is the one line saying where the storage went and why there.
func storageLogLine(driver, where, dir string, overlayfs bool, volumeUnsuitable string, refusals []string) string {
	line := fmt.Sprintf("storage: %s %s", driver, where)
	var why []string
	if overlayfs {
		why = append(why, dir+" is on overlayfs, which cannot hold overlay's layers")
		if volumeUnsuitable != "" {
			why = append(why, volumeUnsuitable)
		}
	}
	why = append(why, refusals...)
	if len(why) == 0 {
		return line
	}
	return line + " (" + strings.Join(why, "; ") + ")"
}

// withCleanup is err, with the errors of cleaning up after it, if any, added on the same line.
func withCleanup(err error, cleanups ...error) error {
	if cleanup := errors.Join(cleanups...); cleanup != nil {
		return fmt.Errorf("%w (and cleaning up: %s)", err, strings.ReplaceAll(cleanup.Error(), "\n", "; "))
	}
	return err
}

// placeName names a kind of placement for the log.
func placeName(kind placeKind) string {
	return map[placeKind]string{inBuildDir: "in the build dir", inVolume: "in the work dir", onTmpfs: "on a tmpfs"}[kind]
}

// firstLine is err's message up to its first line break.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// onOverlayfs says whether dir is on an overlayfs (statfs's file system type).
func onOverlayfs(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Type == unix.OVERLAYFS_SUPER_MAGIC, nil
}

// mountTmpfs mounts a tmpfs at dir (mode 0700, nosuid, nodev). Its size is bounded by tmpfsSize: its pages count against the container's
// memory.
func mountTmpfs(dir string) error {
	data := "mode=0700"
	if size := tmpfsSize(); size > 0 {
		data += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mounting a tmpfs at %s: %w", dir, err)
	}
	return nil
}

// cgroupMemoryMax is the memory limit of this process's cgroup (v2) as seen from a container.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// tmpfsSize is half of the container's memory limit when there is one; 0 (the kernel's default:
// half of the machine's memory) otherwise.
func tmpfsSize() int64 {
	data, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return 0
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil { // "max"
		return 0
	}
	return limit / 2
}

// sizeNote is " of at most N MiB" for the file system at dir, "" when statfs fails.
func sizeNote(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return ""
	}
	return fmt.Sprintf(" of at most %d MiB", int64(st.Blocks)*st.Bsize>>20)
}
