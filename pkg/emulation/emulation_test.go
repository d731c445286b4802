package emulation

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBinfmt is a directory standing for a mounted binfmt_misc: register is a plain file.
func fakeBinfmt(t *testing.T, entries map[string]string) Binfmt {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"register": "", "status": "enabled\n"}
	for name, text := range entries {
		files[name] = text
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Binfmt{Dir: dir, LookPath: func(file string) (string, error) { return "/usr/bin/" + file, nil }, KernelRelease: "6.1.0-13-amd64"}
}

func registered(t *testing.T, b Binfmt) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.Dir, "register"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestNativeNeedsNothing(t *testing.T) {
	b := Binfmt{Dir: "/nonexistent", Mount: func(string) error { return errors.New("must not mount") }}
	for _, arch := range []string{"amd64", "386"} {
		r, err := b.Ensure("amd64", arch)
		if err != nil || !r.Native {
			t.Errorf("%s on amd64: %+v, %v; want native", arch, r, err)
		}
	}
}

// The handler has the fix-binary flag and, on kernels that tell QEMU (5.12+), preserves argv[0].
func TestRegistersWithFixBinaryFlag(t *testing.T) {
	const prefix = `:qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:` +
		`\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:`
	for kernel, flags := range map[string]string{"6.1.0-13-amd64": "PF", "5.12.0": "PF", "5.10.0-28-amd64": "F", "4.19.0": "F"} {
		b := fakeBinfmt(t, nil)
		b.KernelRelease = kernel
		r, err := b.Ensure("amd64", "arm64")
		if err != nil {
			t.Fatal(err)
		}
		if got := registered(t, b); got != prefix+flags {
			t.Errorf("kernel %s: registered\n%s\nwant flags %s", kernel, got, flags)
		}
		if !r.Registered || r.Handler != "qemu-aarch64" || !strings.Contains(r.String("arm64"), "registered qemu-aarch64") {
			t.Errorf("result %+v: %s", r, r.String("arm64"))
		}
		if (r.Warning != "") != (flags == "F") {
			t.Errorf("kernel %s: warning %q", kernel, r.Warning)
		}
	}
}

// A handler already there (Debian's, with its own interpreter and flags) is left alone.
func TestLeavesAPresentHandlerAlone(t *testing.T) {
	b := fakeBinfmt(t, map[string]string{"qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"})
	r, err := b.Ensure("amd64", "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if r.Registered || r.Handler != "qemu-aarch64" || registered(t, b) != "" || r.Warning != "" {
		t.Errorf("result %+v, register file %q: want the present handler used", r, registered(t, b))
	}
	// It serves arm64 only: riscv64 gets its own.
	if r, err := b.Ensure("amd64", "riscv64"); err != nil || !r.Registered {
		t.Errorf("riscv64: %+v, %v", r, err)
	}
}

// A present handler without P is used, with a warning.
func TestWarnsWhenAPresentHandlerLosesArgv0(t *testing.T) {
	b := fakeBinfmt(t, map[string]string{"qemu-aarch64": "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"})
	r, err := b.Ensure("amd64", "arm64")
	if err != nil || r.Registered || !strings.Contains(r.Warning, "does not preserve argv[0]") {
		t.Errorf("%+v, %v", r, err)
	}
}

func TestADisabledHandlerDoesNotCount(t *testing.T) {
	b := fakeBinfmt(t, map[string]string{"other": "disabled\ninterpreter /x\nflags: \noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"})
	if r, err := b.Ensure("amd64", "arm64"); err != nil || !r.Registered {
		t.Errorf("%+v, %v: want a registration", r, err)
	}
}

func TestImpossibleEmulationIsOneClearLine(t *testing.T) {
	noQemu := fakeBinfmt(t, nil)
	noQemu.LookPath = func(file string) (string, error) { return "", errors.New("executable file not found in $PATH") }
	noMount := Binfmt{Dir: t.TempDir(), Mount: func(string) error { return errors.New("operation not permitted") }}
	for name, c := range map[string]struct {
		b    Binfmt
		arch string
		want string
	}{
		"no interpreter": {noQemu, "arm64", "linux/arm64 needs QEMU emulation: qemu-aarch64-static is not installed (Debian package qemu-user-static)"},
		"cannot mount":   {noMount, "s390x", "binfmt_misc is not mounted and mounting it at"},
		"unknown arch":   {noQemu, "mips64le", "linux/mips64le cannot be emulated"},
	} {
		_, err := c.b.Ensure("amd64", c.arch)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line containing %q", name, err, c.want)
		}
	}
}
