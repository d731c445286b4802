package sandbox

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultPath is the PATH a step without one searches, as runc's.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// runStep runs the step's process with the mounts' stand-ins in place and returns its exit code.
func runStep(spec *specs.Spec, stderr io.Writer) int {
	staged, err := stage(spec)
	if err == nil {
		var code int
		code, err = runProcess(spec)
		if rerr := staged.restore(); rerr != nil {
			fmt.Fprintf(stderr, "%s: after the step, taking back what stood in for its mounts: %v\n", Name, rerr)
			return 1
		}
		if err == nil {
			return code
		}
	} else if rerr := staged.restore(); rerr != nil {
		err = fmt.Errorf("%w (and taking back: %v)", err, rerr)
	}
	fmt.Fprintf(stderr, "%s: %v\n", Name, err)
	return 1
}

// runProcess runs the step's process chrooted into its root file system as its user, in a
// process group of its own that is killed when the process ends (a RUN leaves nothing running),
// and returns its exit code (128+n for a signal n).
func runProcess(spec *specs.Spec) (int, error) {
	p := spec.Process
	argv0, err := lookPath(spec.Root.Path, p.Args[0], p.Env)
	if err != nil {
		return 0, err
	}
	if p.User.Umask != nil {
		syscall.Umask(int(*p.User.Umask))
	}
	// Pdeathsig follows the thread that started the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	proc, err := os.StartProcess(argv0, p.Args, &os.ProcAttr{
		Dir:   cmp.Or(p.Cwd, "/"),
		Env:   p.Env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys: &syscall.SysProcAttr{
			Chroot:     spec.Root.Path,
			Credential: &syscall.Credential{Uid: p.User.UID, Gid: p.User.GID, Groups: p.User.AdditionalGids},
			Setpgid:    true,
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", p.Args[0], err)
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for sig := range signals {
			_ = syscall.Kill(-proc.Pid, sig.(syscall.Signal))
		}
	}()
	state, err := proc.Wait()
	signal.Stop(signals)
	close(signals)
	_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
	if err != nil {
		return 0, err
	}
	ws := state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// lookPath finds a command named without a slash in the step's PATH, as seen in its root file
// system; the path it returns is resolved again, inside the chroot, when it is run.
func lookPath(rootfs, name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	search := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			search = v
		}
	}
	for _, dir := range filepath.SplitList(search) {
		if !path.IsAbs(dir) {
			continue
		}
		candidate := path.Join(dir, name)
		// Lstat: a link (often absolute, as busybox's) is followed by the kernel, in the chroot.
		if st, err := os.Lstat(filepath.Join(rootfs, candidate)); err == nil && !st.IsDir() {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the step's PATH (%s)", name, search)
}
