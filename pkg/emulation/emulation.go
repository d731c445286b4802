// Package emulation lets a build run RUN steps of a foreign architecture: it makes sure the
// kernel's binfmt_misc hands that architecture's ELF binaries to a statically linked QEMU user-mode
// interpreter (Debian's qemu-user-static, qemu-<arch>-static).
//
// binfmt_misc is machine state shared by every process of the kernel, so Ensure is idempotent: it
// mounts binfmt_misc when it is absent, leaves any handler already registered for the architecture
// alone (whatever its interpreter), and otherwise registers one with the fix-binary flag (F): the
// kernel opens the interpreter once, at registration, so it runs inside chroots and containers that
// do not hold it. On kernels from 5.12 the handler also preserves argv[0] (flag P, which QEMU
// reads from AT_FLAGS): busybox, as in busybox and Alpine images, runs its applets by re-executing
// itself under their name, and without P every applet of a pipeline would run as the shell. It
// keeps no state of its own.
package emulation

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultDir is where binfmt_misc is mounted.
const DefaultDir = "/proc/sys/fs/binfmt_misc"

// Binfmt is one binfmt_misc mount: Dir is DefaultDir except in tests. LookPath finds an
// interpreter (exec.LookPath when nil); Mount mounts binfmt_misc at Dir (unix.Mount when nil).
// KernelRelease is the kernel's release (uname -r when "").
type Binfmt struct {
	Dir           string
	LookPath      func(file string) (string, error)
	Mount         func(dir string) error
	KernelRelease string
}

// Result says what Ensure found or did, for one log line.
type Result struct {
	Native      bool   // the machine runs the architecture itself: nothing was needed
	Handler     string // the binfmt_misc entry serving the architecture
	Interpreter string // its interpreter, when Ensure registered it
	Registered  bool   // Ensure registered the handler (false: it was there)
	Flags       string // the flags it was registered with
	// Warning, when set, says why the handler may not run every program (one line).
	Warning string
}

// String is the log line for r and the architecture.
func (r Result) String(arch string) string {
	switch {
	case r.Native:
		return fmt.Sprintf("emulation: linux/%s runs natively", arch)
	case r.Registered:
		return fmt.Sprintf("emulation: linux/%s runs under QEMU: registered %s (%s, flags %s) with binfmt_misc", arch, r.Handler, r.Interpreter, r.Flags)
	default:
		return fmt.Sprintf("emulation: linux/%s runs under QEMU through the binfmt_misc handler %s already registered", arch, r.Handler)
	}
}

// elf is how binfmt_misc recognises one architecture's executables.
type elf struct {
	qemu        string // QEMU's name: the interpreter is qemu-<qemu>-static
	magic, mask string // hex, as in QEMU's qemu-binfmt-conf.sh and Debian's binfmt.d files
}

// architectures are the GOARCH names QEMU can emulate, with their ELF headers.
var architectures = map[string]elf{
	"amd64":   {"x86_64", "7f454c4602010100000000000000000002003e00", "fffffffffffefe00fffffffffffffffffeffffff"},
	"arm64":   {"aarch64", "7f454c460201010000000000000000000200b700", "ffffffffffffff00fffffffffffffffffeffffff"},
	"arm":     {"arm", "7f454c4601010100000000000000000002002800", "ffffffffffffff00fffffffffffffffffeffffff"},
	"ppc64le": {"ppc64le", "7f454c4602010100000000000000000002001500", "fffffffffffffffcfffffffffffffffffeffff00"},
	"s390x":   {"s390x", "7f454c4602020100000000000000000000020016", "fffffffffffffffcfffffffffffffffffffeffff"},
	"riscv64": {"riscv64", "7f454c460201010000000000000000000200f300", "ffffffffffffff00fffffffffffffffffeffffff"},
}

// Native reports whether a machine of hostArch runs arch's binaries without emulation.
func Native(hostArch, arch string) bool {
	return arch == hostArch || (hostArch == "amd64" && arch == "386")
}

// Ensure makes linux/arch binaries runnable on a hostArch machine: nothing when native, else the
// handler already registered for arch, else qemu-<arch>-static registered with the F flag. Its
// errors are one line saying why emulation is impossible.
func (b Binfmt) Ensure(hostArch, arch string) (Result, error) {
	if Native(hostArch, arch) {
		return Result{Native: true}, nil
	}
	e, ok := architectures[arch]
	if !ok {
		return Result{}, fmt.Errorf("linux/%s cannot be emulated: QEMU user emulation is known here for %s only", arch, knownArchitectures())
	}
	if err := b.mount(); err != nil {
		return Result{}, fmt.Errorf("linux/%s needs QEMU emulation: %w", arch, err)
	}
	if handler, err := b.handlerFor(e); err != nil || handler != "" {
		return Result{Handler: handler, Warning: b.argv0Warning(handler)}, err
	}
	interpreter, err := b.lookPath("qemu-" + e.qemu + "-static")
	if err != nil {
		return Result{}, fmt.Errorf("linux/%s needs QEMU emulation: qemu-%s-static is not installed (Debian package qemu-user-static): %w", arch, e.qemu, err)
	}
	name, flags := "qemu-"+e.qemu, "F"
	if b.preservesArgv0() {
		flags = "PF"
	}
	if err := b.register(name, e, interpreter, flags); err != nil {
		// A concurrent put may have registered it first.
		if handler, _ := b.handlerFor(e); handler != "" {
			return Result{Handler: handler, Warning: b.argv0Warning(handler)}, nil
		}
		return Result{}, fmt.Errorf("linux/%s needs QEMU emulation: register %s with binfmt_misc: %w (the resource must run privileged)", arch, interpreter, err)
	}
	r := Result{Handler: name, Interpreter: interpreter, Registered: true, Flags: flags}
	if flags == "F" {
		r.Warning = fmt.Sprintf("emulation: kernel %s is older than 5.12: %s cannot preserve argv[0], so busybox applets run in a pipeline may fail", b.kernelRelease(), name)
	}
	return r, nil
}

// argv0Warning is a warning when the handler does not preserve argv[0] (no flag P).
func (b Binfmt) argv0Warning(handler string) string {
	data, err := os.ReadFile(filepath.Join(b.dir(), handler))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		if flags, ok := strings.CutPrefix(line, "flags: "); ok && !strings.Contains(flags, "P") {
			return fmt.Sprintf("emulation: the registered handler %s does not preserve argv[0] (no flag P): busybox applets run in a pipeline may fail", handler)
		}
	}
	return ""
}

// preservesArgv0 says whether the kernel passes binfmt_misc's P flag to the interpreter through
// AT_FLAGS (from Linux 5.12), which QEMU reads.
func (b Binfmt) preservesArgv0() bool {
	var major, minor int
	if _, err := fmt.Sscanf(b.kernelRelease(), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || (major == 5 && minor >= 12)
}

func (b Binfmt) kernelRelease() string {
	if b.KernelRelease != "" {
		return b.KernelRelease
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// mount mounts binfmt_misc at Dir unless its register file is already there.
func (b Binfmt) mount() error {
	if _, err := os.Stat(filepath.Join(b.dir(), "register")); err == nil {
		return nil
	}
	mount := b.Mount
	if mount == nil {
		mount = func(dir string) error { return unix.Mount("binfmt_misc", dir, "binfmt_misc", 0, "") }
	}
	if err := mount(b.dir()); err != nil {
		return fmt.Errorf("binfmt_misc is not mounted and mounting it at %s failed: %w (the resource must run privileged)", b.dir(), err)
	}
	if _, err := os.Stat(filepath.Join(b.dir(), "register")); err != nil {
		return fmt.Errorf("binfmt_misc mounted at %s has no register file: %w", b.dir(), err)
	}
	return nil
}

// handlerFor is the name of an enabled entry that would run e's executables, "" when none does.
func (b Binfmt) handlerFor(e elf) (string, error) {
	entries, err := os.ReadDir(b.dir())
	if err != nil {
		return "", fmt.Errorf("read binfmt_misc handlers: %w", err)
	}
	header, _ := hex.DecodeString(e.magic)
	for _, entry := range entries {
		if entry.Name() == "register" || entry.Name() == "status" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.dir(), entry.Name()))
		if err != nil {
			continue // removed meanwhile, or not an entry
		}
		if handles(string(data), header) {
			return entry.Name(), nil
		}
	}
	return "", nil
}

// handles reports whether an entry (the text of its binfmt_misc file) is enabled and matches the
// ELF header at offset 0.
func handles(entry string, header []byte) bool {
	fields := map[string]string{}
	enabled := false
	for _, line := range strings.Split(entry, "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		fields[key] = value
		enabled = enabled || key == "enabled"
	}
	if !enabled || (fields["offset"] != "" && fields["offset"] != "0") {
		return false
	}
	magic, err := hex.DecodeString(fields["magic"])
	if err != nil || len(magic) == 0 || len(magic) > len(header) {
		return false
	}
	mask, err := hex.DecodeString(fields["mask"])
	if err != nil || (len(mask) != 0 && len(mask) != len(magic)) {
		return false
	}
	for i := range magic {
		m := byte(0xff)
		if len(mask) > 0 {
			m = mask[i]
		}
		if header[i]&m != magic[i]&m {
			return false
		}
	}
	return true
}

// register writes the handler's line to binfmt_misc's register file.
func (b Binfmt) register(name string, e elf, interpreter, flags string) error {
	line := fmt.Sprintf(":%s:M::%s:%s:%s:%s", name, escape(e.magic), escape(e.mask), interpreter, flags)
	f, err := os.OpenFile(filepath.Join(b.dir(), "register"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(line))
	return errors.Join(werr, f.Close())
}

// escape writes hex bytes as binfmt_misc's \xNN escapes.
func escape(hexBytes string) string {
	var out bytes.Buffer
	for i := 0; i+1 < len(hexBytes); i += 2 {
		out.WriteString(`\x` + hexBytes[i:i+2])
	}
	return out.String()
}

func (b Binfmt) dir() string {
	if b.Dir == "" {
		return DefaultDir
	}
	return b.Dir
}

// lookPath finds an interpreter in PATH, else where Debian and a local install put it (PATH may
// be short in a resource container).
func (b Binfmt) lookPath(file string) (string, error) {
	if b.LookPath != nil {
		return b.LookPath(file)
	}
	path, err := exec.LookPath(file)
	if err == nil {
		return filepath.Abs(path)
	}
	for _, dir := range []string{"/usr/bin", "/usr/local/bin"} {
		if info, statErr := os.Stat(filepath.Join(dir, file)); statErr == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return filepath.Join(dir, file), nil
		}
	}
	return "", err
}

func knownArchitectures() string {
	return "amd64, arm64, arm, ppc64le, riscv64, s390x"
}
