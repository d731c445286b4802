package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// start lets the step's first process go on: it is blocked opening the fifo for writing and
// writes one byte once a reader is there. start holds one reader open until that byte comes (a
// reader that came and went could leave the write without a reader: EPIPE), and if the process
// has died instead, start says so rather than waiting for ever.
func (s step) start() error {
	pid, err := s.pid()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.fifo(), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer f.Close()
	fd := int(f.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	for {
		// 0 bytes: no writer yet; EAGAIN: the writer is there, its byte not yet.
		if n, _ := syscall.Read(fd, make([]byte, 1)); n == 1 {
			return os.Remove(s.fifo())
		}
		if !alive(pid) {
			return fmt.Errorf("start: the step's process %d ended before it started", pid)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// state prints the OCI state of the step.
func (s step) state(out io.Writer) error {
	pid, err := s.pid()
	if err != nil {
		return err
	}
	bundle, _ := os.ReadFile(s.bundleFile())
	status := specs.StateStopped
	if alive(pid) {
		status = specs.StateRunning
		if _, err := os.Stat(s.fifo()); err == nil {
			status = specs.StateCreated
		}
	}
	return json.NewEncoder(out).Encode(specs.State{
		Version: specs.Version, ID: s.id, Status: status, Pid: pid, Bundle: string(bundle),
	})
}

// kill sends a signal (a name like SIGKILL or KILL, or a number; default SIGTERM).
func (s step) kill(args []string) error {
	pid, err := s.pid()
	if err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if len(args) > 0 {
		if sig, err = parseSignal(args[0]); err != nil {
			return err
		}
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill: %w", err)
	}
	return nil
}

// delete kills what is left of the step and removes its state.
func (s step) delete() error {
	if pid, err := s.pid(); err == nil && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return os.RemoveAll(s.dir)
}

func (s step) pid() (int, error) {
	b, err := os.ReadFile(s.pidFile())
	if err != nil {
		return 0, fmt.Errorf("container %s: %w", s.id, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive says whether pid runs (a zombie, ended but not yet reaped by buildah, does not).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may itself hold ") ".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT,
}

func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n), nil
	}
	if sig, ok := signals[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("kill: unknown signal %q", s)
}
