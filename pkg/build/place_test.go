package build

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

func TestStoragePlan(t *testing.T) {
	for _, tc := range []struct {
		name             string
		driver           string
		overlayfs        bool
		volumeUnsuitable string
		want             []placement
	}{
		{"not on overlayfs: today's", "", false, "", []placement{{inBuildDir, "overlay"}, {inBuildDir, "vfs"}}},
		{"not on overlayfs, overlay asked", "overlay", false, "", []placement{{inBuildDir, "overlay"}}},
		{"vfs asked", "vfs", true, "", []placement{{inBuildDir, "vfs"}}},
		{"on overlayfs", "", true, "", []placement{{inVolume, "overlay"}, {onTmpfs, "overlay"}, {inBuildDir, "vfs"}}},
		{"on overlayfs, overlay asked", "overlay", true, "", []placement{{inVolume, "overlay"}, {onTmpfs, "overlay"}}},
		{"on overlayfs, no volume", "", true, "no work dir", []placement{{onTmpfs, "overlay"}, {inBuildDir, "vfs"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := storagePlan(tc.driver, tc.overlayfs, tc.volumeUnsuitable); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("storagePlan = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnsuitableVolume(t *testing.T) {
	vol := t.TempDir()
	notOverlay := storageProbe{onOverlayfs: func(string) (bool, error) { return false, nil }}
	overlay := storageProbe{onOverlayfs: func(string) (bool, error) { return true, nil }}
	for _, tc := range []struct {
		name  string
		opts  Options
		probe storageProbe
		want  string // in the reason; "" = suitable
	}{
		{"suitable", Options{VolumeDir: vol, ContextDir: filepath.Join(vol, "repo")}, notOverlay, ""},
		{"none", Options{ContextDir: vol}, notOverlay, "no work dir"},
		{"the context", Options{VolumeDir: vol, ContextDir: vol}, notOverlay, "within the build context"},
		{"inside the context", Options{VolumeDir: vol, ContextDir: filepath.Dir(vol)}, notOverlay, "within the build context"},
		{"an overlay (an input)", Options{VolumeDir: vol, ContextDir: "/elsewhere"}, overlay, "on overlayfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unsuitableVolume(tc.opts, tc.probe)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Errorf("unsuitableVolume = %q, want %q", got, tc.want)
			}
		})
	}
}

// probeOn says that exactly the directories overlayfs names are on an overlayfs; mounts fail
// with mountErr unless it is nil, when a real tmpfs is mounted.
func probeOn(mountErr error, overlayfs ...string) storageProbe {
	return storageProbe{
		onOverlayfs: func(dir string) (bool, error) {
			for _, o := range overlayfs {
				if dir == o {
					return true, nil
				}
			}
			return false, nil
		},
		mountTmpfs: func(dir string) error {
			if mountErr != nil {
				return mountErr
			}
			return mountTmpfs(dir)
		},
	}
}

// openForTest runs openStorage and returns it with its log; the storage is shut down and removed
// when the test ends, and the test fails if anything is left mounted under dir or opts.VolumeDir.
func openForTest(t *testing.T, dir string, opts Options, probe storageProbe) (*openedStorage, string) {
	t.Helper()
	var log bytes.Buffer
	opts.Log = &logrus.Logger{Out: &log, Formatter: messageOnly{}, Hooks: logrus.LevelHooks{}, Level: logrus.InfoLevel}
	opened, err := openStorage(dir, opts, probe)
	if err != nil {
		t.Fatalf("openStorage: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		if _, err := opened.store.Shutdown(true); err != nil {
			t.Errorf("shutting down: %v", err)
		}
		for _, d := range []string{opened.root, dir} {
			if err := removeAll(d); err != nil {
				t.Errorf("removeAll: %v", err)
			}
		}
		assertNothingMounted(t, dir, opts.VolumeDir)
	})
	return opened, log.String()
}

// messageOnly formats a log entry as its message alone.
type messageOnly struct{}

func (messageOnly) Format(e *logrus.Entry) ([]byte, error) { return []byte(e.Message + "\n"), nil }

func assertNothingMounted(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if d == "" {
			continue
		}
		mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(d))
		if err != nil || len(mounts) > 0 {
			t.Errorf("mounts left under %s: %d (%v)", d, len(mounts), err)
		}
	}
}

// TestStorageGoesToTheWorkDirFromOverlayfs: with the build dir on an overlayfs, overlay goes in a
// hidden directory of the work dir, and says so in one line.
func TestStorageGoesToTheWorkDirFromOverlayfs(t *testing.T) {
	testharness.RequireRoot(t, "overlay storage")
	dir, vol := t.TempDir(), t.TempDir()
	opened, log := openForTest(t, dir, Options{VolumeDir: vol, ContextDir: filepath.Join(vol, "repo")}, probeOn(nil, dir))
	if filepath.Dir(opened.root) != vol || !strings.HasPrefix(filepath.Base(opened.root), ".buildah-image-resource-storage-") {
		t.Errorf("graph root %s, want a hidden directory of %s", opened.root, vol)
	}
	if got := opened.store.GraphDriverName(); got != "overlay" {
		t.Errorf("driver %s, want overlay", got)
	}
	if want := "storage: overlay in " + opened.root + " (" + dir + " is on overlayfs"; !strings.HasPrefix(log, want) || strings.Count(log, "\n") != 1 {
		t.Errorf("log %q, want one line starting %q", log, want)
	}
}

// TestStorageGoesToATmpfsWhenTheWorkDirIsTheContext: a real tmpfs, mounted under the build dir.
func TestStorageGoesToATmpfsWhenTheWorkDirIsTheContext(t *testing.T) {
	testharness.RequireRoot(t, "mounting a tmpfs")
	dir, vol := t.TempDir(), t.TempDir()
	opened, log := openForTest(t, dir, Options{VolumeDir: vol, ContextDir: vol}, probeOn(nil, dir))
	var st unix.Statfs_t
	if err := unix.Statfs(opened.root, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("graph root %s is not a tmpfs (%x, %v)", opened.root, st.Type, err)
	}
	if filepath.Dir(opened.root) != dir {
		t.Errorf("tmpfs at %s, want it under %s", opened.root, dir)
	}
	if !strings.HasPrefix(log, "storage: overlay on a tmpfs of at most ") || !strings.Contains(log, " at "+opened.root+" (") || !strings.Contains(log, "within the build context") {
		t.Errorf("log %q", log)
	}
	if entries, _ := os.ReadDir(vol); len(entries) != 0 {
		t.Errorf("the work dir got %d entries", len(entries))
	}
}

// TestStorageFallsBackToVFSWhenMountsFail: as in a user namespace without mount rights, where
// every mount fails, the probe ends at vfs under the build dir and names what failed.
func TestStorageFallsBackToVFSWhenMountsFail(t *testing.T) {
	dir := t.TempDir()
	opened, log := openForTest(t, dir, Options{}, probeOn(unix.EPERM, dir))
	if got := opened.store.GraphDriverName(); got != "vfs" {
		t.Errorf("driver %s, want vfs", got)
	}
	if opened.root != filepath.Join(dir, "storage") {
		t.Errorf("graph root %s, want %s/storage", opened.root, dir)
	}
	for _, want := range []string{"storage: vfs in " + opened.root, "no work dir", "overlay on a tmpfs failed: ", "operation not permitted"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %q lacks %q", log, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tmpfs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the tmpfs mount point is left: %v", err)
	}
}

// TestStorageOverlayAskedFailsWhenNothingCanHoldIt: storage_driver overlay with no place for it
// is an error, not vfs.
func TestStorageOverlayAskedFailsWhenNothingCanHoldIt(t *testing.T) {
	dir := t.TempDir()
	_, err := openStorage(dir, Options{StorageDriver: "overlay", Log: logrus.New()}, probeOn(unix.EPERM, dir))
	if err == nil || !strings.HasPrefix(err.Error(), "opening image storage") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %q, want one line: opening image storage ...", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left %d entries in the build dir", len(entries))
	}
}

// TestBuildFromARealOverlayfs builds with its work dir on a real overlayfs mount, as in a Concourse
// container: the storage goes to the volume dir, RUN works, and Close leaves both empty.
func TestBuildFromARealOverlayfs(t *testing.T) {
	testharness.RequireRoot(t, "mounting an overlayfs")
	bb := busybox(t)
	layers := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(layers, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(layers, "merged")
	data := "lowerdir=" + filepath.Join(layers, "lower") + ",upperdir=" + filepath.Join(layers, "upper") + ",workdir=" + filepath.Join(layers, "work")
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		testharness.Missing(t, "mounting an overlayfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })

	ctxDir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "build", "single"))
	if err != nil {
		t.Fatal(err)
	}
	vol := t.TempDir()
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	res, err := Build(t.Context(), parsed(t, Options{
		ContextDir: ctxDir, Dockerfile: filepath.Join(ctxDir, "Dockerfile"), WorkDir: merged, VolumeDir: vol,
		Bases: []Base{{Names: []string{"docker.io/library/busybox:latest"}, Digest: bb.digest, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}},
		Log:   log, Stderr: &out,
	}))
	t.Logf("build output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if want := "storage: overlay in " + vol + "/.buildah-image-resource-storage-"; !strings.Contains(out.String(), want) {
		t.Errorf("the log lacks %q", want)
	}
	if got := imageFiles(t, res.Image)["/app/out.txt"]; got != "hello world\nfrom the build context\n" {
		t.Errorf("/app/out.txt = %q", got)
	}
	if err := res.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, d := range []string{merged, vol} {
		if entries, err := os.ReadDir(d); err != nil || len(entries) != 0 {
			t.Errorf("%s after Close: %d entries (%v)", d, len(entries), err)
		}
	}
	assertNothingMounted(t, vol)
}
