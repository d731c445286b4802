package sandbox

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// Needed says whether RUN steps need this runtime: whether a process may not make a mount
// namespace of its own and mount a tmpfs in it (buildah's chroot isolation needs both). runtime
// is the path this binary runs under as Name, dir an empty directory to mount on. The reason is
// for the log.
func Needed(runtime, dir string) (needed bool, reason string) {
	cmd := exec.Command(runtime, "--root", dir, "probe-mount", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return false, ""
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return true, string(trimLine(out))
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return true, "this container may not make a mount namespace: " + errno.Error()
	}
	return true, "making a mount namespace: " + err.Error()
}

// probeMount runs in a mount namespace of its own: it mounts a tmpfs on dir and unmounts it.
func probeMount(args []string) error {
	if len(args) != 1 {
		return errors.New("probe-mount: expected one directory")
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", args[0], "tmpfs", 0, "size=64k"); err != nil {
		return fmt.Errorf("mounting a tmpfs: %w", err)
	}
	return unix.Unmount(args[0], 0)
}

func trimLine(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
