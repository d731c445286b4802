package sandbox

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// tree writes files (name → content; a name ending in / is a directory, content "->x" a link
// to x) under dir, every file and directory dated at a fixed time.
func tree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		content := files[name]
		switch {
		case strings.HasSuffix(name, "/"):
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(content, "->"):
			if err := os.Symlink(strings.TrimPrefix(content, "->"), path); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot describes every entry under dir: kind, mode, size, content and, for files, time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		desc := fmt.Sprintf("%v", info.Mode())
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q %s", data, info.ModTime().UTC().Format(time.RFC3339Nano))
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			desc += " -> " + target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Every stand-in is taken back: the root file system is as it was, times included, and a
// writable directory keeps what the step wrote in it.
func TestStageTakesEverythingBack(t *testing.T) {
	rootfs, host := t.TempDir(), t.TempDir()
	tree(t, rootfs, map[string]string{
		"etc/hosts": "image's hosts\n", "var/cache/apt/": "", "var/cache/apt/old.bin": "image's cache",
		"tmp/": "", "tmp/left-by-image": "x", "run/": "", "context/": "",
	})
	tree(t, host, map[string]string{"hosts": "127.0.0.1 localhost\n", "cache/": "", "cache/pkg.deb": "cached",
		"secret": "s3cr3t", "ctx/": "", "ctx/file": "from the context"})
	before := snapshot(t, rootfs)
	spec := &specs.Spec{Root: &specs.Root{Path: rootfs}, Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts"},
		{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(host, "hosts"), Options: []string{"rbind"}},
		{Destination: "/var/cache/apt", Type: "bind", Source: filepath.Join(host, "cache"), Options: []string{"rbind", "rw"}},
		{Destination: "/context", Type: "bind", Source: filepath.Join(host, "ctx"), Options: []string{"rbind", "ro"}},
		{Destination: "/run/secret", Type: "bind", Source: filepath.Join(host, "secret"), Options: []string{"rbind", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=1777"}},
	}}
	s, err := stage(spec)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"etc/hosts": "127.0.0.1 localhost\n", "var/cache/apt/pkg.deb": "cached", "run/secret": "s3cr3t",
		"context/file": "from the context", "dev/null": "",
	} {
		if got := read(t, filepath.Join(rootfs, path)); got != want {
			t.Errorf("during the step, /%s = %q, want %q", path, got, want)
		}
	}
	// Real devices where the test may make them (root, no user namespace), else stand-ins:
	// either way they read and write as the devices do.
	urandom, err := os.Open(filepath.Join(rootfs, "dev/urandom"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.CopyN(io.Discard, urandom, 100<<20); n != 100<<20 {
		t.Errorf("read %d bytes of /dev/urandom (%v), want 100 MiB", n, err)
	}
	urandom.Close()
	if err := os.WriteFile(filepath.Join(rootfs, "dev/null"), make([]byte, 3<<20), 0); err != nil {
		t.Errorf("writing to /dev/null: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(rootfs, "tmp")); len(entries) != 0 {
		t.Errorf("/tmp during the step holds %v, want it empty", entries)
	}
	// The step writes everywhere.
	for _, path := range []string{"var/cache/apt/new.deb", "dev/made-by-step", "tmp/scratch", "context/written"} {
		if err := os.WriteFile(filepath.Join(rootfs, path), []byte("step"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, rootfs)
	for name, desc := range before {
		if after[name] != desc {
			t.Errorf("/%s was %s, is %s after the step", name, desc, after[name])
		}
	}
	for name, desc := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("/%s (%s) is left after the step", name, desc)
		}
	}
	if got := read(t, filepath.Join(host, "cache/new.deb")); got != "step" {
		t.Errorf("the cache mount lost what the step wrote: %q", got)
	}
	if _, err := os.Stat(filepath.Join(host, "ctx/written")); err == nil {
		t.Error("the step wrote into a read-only bind's source")
	}
}

// A link the image (or an earlier step) put where a mount goes cannot lead a stand-in outside
// the root file system.
func TestStageRefusesLinksOutOfTheRoot(t *testing.T) {
	for _, tc := range []struct{ name, dest, link string }{
		{"file through an absolute link", "/etc/hosts", "etc/hosts"},
		{"file through a relative link", "/etc/hosts", "etc"},
		{"directory under a linked parent", "/var/cache/apt", "var"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs, outside, host := t.TempDir(), t.TempDir(), t.TempDir()
			tree(t, outside, map[string]string{"hosts": "outside, untouched", "cache/apt/": ""})
			target := outside
			if tc.link == "etc/hosts" {
				target = filepath.Join(outside, "hosts")
			}
			rel, err := filepath.Rel(filepath.Join(rootfs, filepath.Dir(tc.link)), target)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "file through an absolute link" {
				rel = target
			}
			tree(t, rootfs, map[string]string{tc.link: "->" + rel})
			tree(t, host, map[string]string{"src": "from the host", "dir/": "", "dir/f": "from the host"})
			source := filepath.Join(host, "src")
			if strings.HasPrefix(tc.dest, "/var") {
				source = filepath.Join(host, "dir")
			}
			was := snapshot(t, outside)
			s, err := stage(&specs.Spec{Root: &specs.Root{Path: rootfs}, Mounts: []specs.Mount{
				{Destination: tc.dest, Type: "bind", Source: source, Options: []string{"rbind", "rw"}},
			}})
			if err == nil {
				t.Error("staged a mount through a link out of the root")
			}
			if err := s.restore(); err != nil {
				t.Errorf("restore: %v", err)
			}
			if now := snapshot(t, outside); fmt.Sprint(now) != fmt.Sprint(was) {
				t.Errorf("outside the root changed:\n%v\nwas\n%v", now, was)
			}
			if _, err := os.Stat(source); err != nil {
				t.Errorf("the mount's source is gone: %v", err)
			}
		})
	}
}

// Where no device can be made (a user namespace), stand-ins read and write as the devices do:
// urandom and zero without end, null taking anything; all go afterwards.
func TestStandInsWhereNoDeviceCanBeMade(t *testing.T) {
	rootfs := t.TempDir()
	tree(t, rootfs, map[string]string{"dev/": ""})
	before := snapshot(t, rootfs)
	s, err := stageWith(&specs.Spec{Root: &specs.Root{Path: rootfs}, Mounts: []specs.Mount{{Destination: "/dev", Type: "tmpfs"}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"urandom", "random", "zero"} {
		f, err := os.Open(filepath.Join(rootfs, "dev", name))
		if err != nil {
			t.Fatal(err)
		}
		zeros := 0
		buf := make([]byte, 1<<20)
		for read := 0; read < 100<<20; {
			n, err := f.Read(buf)
			if err != nil {
				t.Fatalf("/dev/%s after %d bytes: %v", name, read, err)
			}
			for _, b := range buf[:n] {
				if b == 0 {
					zeros++
				}
			}
			read += n
		}
		f.Close()
		if all := zeros == 100<<20; all != (name == "zero") {
			t.Errorf("/dev/%s: %d of 100 MiB are zeros", name, zeros)
		}
	}
	null := filepath.Join(rootfs, "dev/null")
	if err := os.WriteFile(null, make([]byte, 3<<20), 0); err != nil {
		t.Errorf("writing to /dev/null: %v", err)
	}
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, rootfs); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after the step:\n%v\nbefore:\n%v", after, before)
	}
}
