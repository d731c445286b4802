package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const sentinel = "0utside-s3ntinel"

// layout makes base/work, the volume, and base/outside with a file holding the sentinel.
func layout(t *testing.T) (work, outside string) {
	t.Helper()
	base := t.TempDir()
	work, outside = filepath.Join(base, "work"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(work, "repo/sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(outside, "secret"), sentinel)
	write(t, filepath.Join(work, "repo/tag"), "1.0.0\n")
	for link, target := range map[string]string{
		"repo/out":      "../../outside/secret",
		"repo/abs":      filepath.Join(outside, "secret"),
		"repo/absin":    filepath.Join(work, "repo/tag"),
		"repo/zero":     "/dev/zero",
		"repo/sub/up":   "../tag",
		"repo/outdir":   "../../outside",
		"repo/dangling": "nope",
	} {
		if err := os.Symlink(target, filepath.Join(work, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(work, "repo/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return work, outside
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadFileRefusesWhatLeavesTheVolume(t *testing.T) {
	work, _ := layout(t)
	v := New(work)
	cases := []struct {
		name, want string
		is         error
	}{
		{"repo/out", "params.tag_file: repo/out: resolves outside the work dir", ErrOutside},
		{"repo/abs", "params.tag_file: repo/abs: resolves outside the work dir", ErrOutside},
		{"../outside/secret", "params.tag_file: ../outside/secret: resolves outside the work dir", ErrOutside},
		{"repo/../../outside/secret", "params.tag_file: repo/../../outside/secret: resolves outside the work dir", ErrOutside},
		{"repo/outdir/secret", "params.tag_file: repo/outdir/secret: resolves outside the work dir", ErrOutside},
		{filepath.Join(work, "repo/out"), "params.tag_file: " + filepath.Join(work, "repo/out") + ": resolves outside the work dir", ErrOutside},
		{"repo/zero", "params.tag_file: repo/zero: resolves outside the work dir", ErrOutside},
		{"/dev/zero", "params.tag_file: /dev/zero: not a regular file (a device)", ErrNotRegular},
		{"repo/fifo", "params.tag_file: repo/fifo: not a regular file (a named pipe)", ErrNotRegular},
		{"repo", "params.tag_file: repo: not a regular file (a directory)", ErrNotRegular},
		{"repo/nope", "params.tag_file: repo/nope: no such file or directory", os.ErrNotExist},
		{"repo/dangling", "params.tag_file: repo/dangling: no such file or directory", os.ErrNotExist},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := v.ReadFile("params.tag_file", c.name, MaxParamFile)
			if err == nil {
				t.Fatalf("read %q, want an error", f.Data)
			}
			if !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line starting %q", err, c.want)
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
			if strings.Contains(err.Error(), sentinel) {
				t.Errorf("error %q shows the outside file", err)
			}
		})
	}
}

func TestReadFileBoundsTheSize(t *testing.T) {
	work, _ := layout(t)
	write(t, filepath.Join(work, "repo/big"), strings.Repeat("x", 1<<20+1))
	write(t, filepath.Join(work, "repo/full"), strings.Repeat("x", 1<<20))
	v := New(work)
	_, err := v.ReadFile("params.tag_file", "repo/big", MaxParamFile)
	if err == nil || err.Error() != "params.tag_file: repo/big: larger than 1 MiB" || !errors.Is(err, ErrTooLarge) {
		t.Errorf("error %v, want params.tag_file: repo/big: larger than 1 MiB", err)
	}
	if f, err := v.ReadFile("params.tag_file", "repo/full", MaxParamFile); err != nil || len(f.Data) != 1<<20 {
		t.Errorf("a file of exactly the bound: %d bytes, %v", len(f.Data), err)
	}
	if _, err := v.ReadFile("params.secrets.s.source", "repo/big", MaxSecret); err == nil || !strings.HasSuffix(err.Error(), "larger than 500 KiB") {
		t.Errorf("secret bound: %v", err)
	}
}

func TestReadFileInsideAndAbsolute(t *testing.T) {
	work, outside := layout(t)
	v := New(work)
	cases := []struct {
		name, path, data string
		inside           bool
	}{
		{"repo/tag", filepath.Join(work, "repo/tag"), "1.0.0\n", true},
		{"repo/sub/up", filepath.Join(work, "repo/sub/up"), "1.0.0\n", true},
		{"repo/sub/../tag", filepath.Join(work, "repo/tag"), "1.0.0\n", true},
		{filepath.Join(work, "repo/tag"), filepath.Join(work, "repo/tag"), "1.0.0\n", true},
		{filepath.Join(outside, "secret"), filepath.Join(outside, "secret"), sentinel, false}, // the pipeline author's choice
	}
	for _, c := range cases {
		f, err := v.ReadFile("params.tag_file", c.name, MaxParamFile)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(f.Data) != c.data || f.Path != c.path || f.Inside != c.inside {
			t.Errorf("%s: read %q at %s inside=%v, want %q at %s inside=%v", c.name, f.Data, f.Path, f.Inside, c.data, c.path, c.inside)
		}
	}
}

func TestQuotable(t *testing.T) {
	inside, outside := File{Inside: true}, File{}
	if !inside.Quotable("bad/tag") || inside.Quotable(strings.Repeat("x", MaxQuote+1)) || outside.Quotable("bad/tag") {
		t.Error("only short text from inside the volume may be quoted")
	}
}

func TestPath(t *testing.T) {
	work, outside := layout(t)
	v := New(work)
	for name, want := range map[string]string{
		"repo":                         filepath.Join(work, "repo"),
		"repo/sub/up":                  filepath.Join(work, "repo/sub/up"),
		"nope/x":                       filepath.Join(work, "nope/x"), // missing: its reader reports it
		".":                            work,
		outside:                        outside,
		filepath.Join(work, "repo"):    filepath.Join(work, "repo"),
		filepath.Join(outside, "nope"): filepath.Join(outside, "nope"),
	} {
		if got, err := v.Path("params.build", name); err != nil || got != want {
			t.Errorf("Path(%q) = %q, %v, want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"repo/outdir", "repo/outdir/secret", "../outside", "repo/abs", filepath.Join(work, "repo/outdir")} {
		_, err := v.Path("params.build", name)
		if want := "params.build: " + name + ": resolves outside the work dir"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Path(%q): %v, want %q", name, err, want)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 4 << 20: "4 MiB", 500 << 10: "500 KiB", 100: "100 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
