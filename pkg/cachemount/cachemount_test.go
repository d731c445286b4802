package cachemount

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
)

func TestPackRestoreRoundTrip(t *testing.T) {
	m := dockerfile.Mount{ID: "/root/.cache/pip", Target: "/root/.cache/pip"}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "wheels/x"), 0o755)
	os.WriteFile(filepath.Join(dir, "wheels/x/a.whl"), []byte("wheel"), 0o644)
	os.Symlink("x/a.whl", filepath.Join(dir, "wheels/latest"))
	// Made by an earlier build: a restore now must bring these times back, or the next save
	// pushes unchanged content.
	long := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"wheels/x/a.whl", "wheels/x", "wheels"} {
		os.Chtimes(filepath.Join(dir, p), long, long)
	}

	first, err := Pack(dir, t.TempDir(), m, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Pack(dir, t.TempDir(), m, 1<<20)
	if first.Content != again.Content || first.Size != 5 {
		t.Fatalf("unchanged content: %s then %s (size %d)", first.Content, again.Content, first.Size)
	}
	os.WriteFile(filepath.Join(dir, "wheels/x/lock"), nil, 0o644)
	os.Remove(filepath.Join(dir, "wheels/x/lock"))
	if touched, _ := Pack(dir, t.TempDir(), m, 1<<20); touched.Content != first.Content {
		t.Fatal("a file made and removed again (a lock) changed the content digest")
	}
	os.WriteFile(filepath.Join(dir, "wheels/x/b.whl"), []byte("more"), 0o644)
	if changed, _ := Pack(dir, t.TempDir(), m, 1<<20); changed.Content == first.Content {
		t.Fatal("a new file did not change the content digest")
	}

	restored := filepath.Join(t.TempDir(), "restored")
	content, err := Restore(first.Image, restored)
	if err != nil || content != first.Content {
		t.Fatalf("restore: %s %v", content, err)
	}
	if data, _ := os.ReadFile(filepath.Join(restored, "wheels/latest")); string(data) != "wheel" {
		t.Fatalf("restored file through its symlink: %q", data)
	}
	if MountID(first.Image) != m.ID {
		t.Errorf("mount id label %q", MountID(first.Image))
	}
	if info, err := os.Stat(filepath.Join(restored, "wheels/x/a.whl")); err != nil || !info.ModTime().Equal(long) {
		t.Fatalf("restored file's modification time: %v %v, want %v", info.ModTime(), err, long)
	}
	if repacked, _ := Pack(restored, t.TempDir(), m, 1<<20); repacked.Content != first.Content {
		t.Error("a restored directory packs to another digest: the next save would push unchanged content")
	}
	if _, err := Pack(dir, t.TempDir(), m, 4); !errors.Is(err, ErrTooBig) {
		t.Fatalf("over the bound: %v", err)
	}
}

func TestDirAndTag(t *testing.T) {
	m := dockerfile.Mount{ID: "apt", Target: "/var/cache/apt"}
	// buildah: digest.FromString("apt:0:0").Encoded()[:16] under $TMPDIR/buildah-cache-<uid> (checked with sha256sum)
	if got, want := Dir("/tmp/x", m), "/tmp/x/buildah-cache-0/6c4bbf768d44be4b"; os.Getuid() == 0 && got != want {
		t.Errorf("Dir = %s, want %s", got, want)
	}
	if got := Tag(dockerfile.Mount{ID: "/root/.cache/pip"}); got != "mount--root-.cache-pip" {
		t.Errorf("Tag = %s", got)
	}
}
