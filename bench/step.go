package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// SampleEvery is how often a step's memory is sampled.
const SampleEvery = 100 * time.Millisecond

// Step is one put on a fresh worker: an empty work directory, and a cgroup (v2 hierarchy, used
// only to know which processes belong to the step) that every process the step starts is
// cloned into, daemons included. Its peak memory is the highest sum, over the sampled moments,
// of the proportional set size (PSS) of every process in that cgroup: RSS without counting a
// page shared by several processes more than once.
type Step struct {
	Dir string // the worker's empty work directory

	cgroup    string
	cgroupFD  int
	log       testharness.LockedBuffer
	daemonLog testharness.LockedBuffer
	daemons   []*exec.Cmd
	started   time.Time
	stop      chan struct{}
	sampled   chan struct{}
	peakKB    atomic.Int64
	peakWho   atomic.Pointer[string]   // the processes at the peak
	maxRSSKB  atomic.Int64             // highest max RSS of a command the step ran, from GNU time
	timed     int                      // commands run under GNU time so far
	watched   atomic.Pointer[[]string] // more cgroups sampled with the step's (a container's)
	inner     time.Duration            // the tool's own elapsed time, inside a container (0: not known)
	deferred  []func()                 // clean-ups Close runs first (not timed)
}

// gnuTime is GNU time (Debian package time). It forks the command it runs and reports the
// max RSS (ru_maxrss of wait4) of the command and the children it waited for. The harness
// does not take ru_maxrss from its own wait4: Go starts commands with vfork, and on exec the
// kernel carries the harness's own peak RSS into the command's ru_maxrss.
const gnuTime = "/usr/bin/time"

// NewStep makes the work directory dir and the step's cgroup under parent (a cgroup v2
// directory) and starts sampling.
func NewStep(dir, parent string) (*Step, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the work directory: %w", err)
	}
	s := &Step{Dir: dir, cgroup: filepath.Join(parent, filepath.Base(dir)), stop: make(chan struct{}), sampled: make(chan struct{})}
	if err := os.Mkdir(s.cgroup, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", s.cgroup, err)
	}
	fd, err := syscall.Open(s.cgroup, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening cgroup %s: %w", s.cgroup, err)
	}
	s.cgroupFD = fd
	go s.sample()
	return s, nil
}

// Begin starts the clock.
func (s *Step) Begin() { s.started = time.Now() }

// Elapsed is the time since Begin.
func (s *Step) Elapsed() time.Duration { return time.Since(s.started) }

// Log is everything the step's processes printed, in order, daemons excepted.
func (s *Step) Log() string { return s.log.String() }

// DaemonLog is what the step's daemons printed.
func (s *Step) DaemonLog() string { return s.daemonLog.String() }

// Logf adds a line of the harness's own to the step's log.
func (s *Step) Logf(format string, args ...any) { fmt.Fprintf(&s.log, "bench: "+format+"\n", args...) }

// Command returns a command that starts in the step's cgroup with its output in the step's log.
func (s *Step) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: s.cgroupFD, Setpgid: true}
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	cmd.Dir = s.Dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Run runs a command to completion; the error holds the end of the step's log.
func (s *Step) Run(ctx context.Context, name string, args ...string) error {
	return s.RunCmd(s.Command(ctx, name, args...))
}

// RunCmd runs cmd (made by Command) to completion.
func (s *Step) RunCmd(cmd *exec.Cmd) error {
	line := strings.Join(cmd.Args, " ")
	fmt.Fprintf(&s.log, "$ %s\n", line)
	rssFile := s.underTime(cmd)
	err := cmd.Run()
	s.noteMaxRSS(rssFile)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", line, err, tail(s.Log(), 40))
	}
	return nil
}

// underTime makes cmd run under GNU time, which writes the command's max RSS (kB) to the file
// it returns; "" when GNU time is not installed (the peak is then sampled only).
func (s *Step) underTime(cmd *exec.Cmd) string {
	if cmd.Err != nil {
		return ""
	}
	if _, err := os.Stat(gnuTime); err != nil {
		return ""
	}
	s.timed++
	file := filepath.Join(s.Dir, fmt.Sprintf("maxrss-%d", s.timed))
	cmd.Args = append([]string{gnuTime, "--format=%M", "--output=" + file, "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = gnuTime
	return file
}

// Outside returns a command that runs outside the step's cgroup, with its output in the step's
// log: what drives the put from outside, as a Concourse worker drives a container (the docker
// CLI), and whose memory is not the put's. Watch names the cgroup of what it starts.
func (s *Step) Outside(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	cmd.Dir = s.Dir
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// RunOutside runs cmd (made by Outside) to completion, logged as RunCmd logs; its max RSS is not
// recorded (it is not the put's).
func (s *Step) RunOutside(cmd *exec.Cmd) error {
	line := strings.Join(cmd.Args, " ")
	fmt.Fprintf(&s.log, "$ %s\n", line)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", line, err, tail(s.Log(), 40))
	}
	return nil
}

// Defer makes Close run f, before anything else it does: clean-up that is not part of the put's
// time (the step is timed until its peer's Put returns, and closed after).
func (s *Step) Defer(f func()) { s.deferred = append(s.deferred, f) }

// NoteInner records how long the tool itself ran inside a container, as opposed to the container's
// start and removal.
func (s *Step) NoteInner(d time.Duration) { s.inner = d }

// Inner is what NoteInner recorded (0 when nothing was).
func (s *Step) Inner() time.Duration { return s.inner }

// Watch adds a cgroup directory (which may not exist yet) whose processes, and those of the
// cgroups below it, are sampled with the step's: a container's, which its runtime makes.
func (s *Step) Watch(dir string) {
	dirs := []string{dir}
	if old := s.watched.Load(); old != nil {
		dirs = append(dirs, *old...)
	}
	s.watched.Store(&dirs)
}

// Output runs a command and returns its standard output (not logged).
func (s *Step) Output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := s.Command(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := s.RunCmd(cmd)
	return strings.TrimSpace(out.String()), err
}

// Daemon starts a long-running process that Close stops.
func (s *Step) Daemon(ctx context.Context, name string, args ...string) error {
	cmd := s.Command(context.WithoutCancel(ctx), name, args...)
	cmd.Stdout, cmd.Stderr = &s.daemonLog, &s.daemonLog
	fmt.Fprintf(&s.log, "$ %s &\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	s.daemons = append(s.daemons, cmd)
	return nil
}

// PeakProcesses names the processes in the step at its memory peak, with their PSS.
func (s *Step) PeakProcesses() string {
	if who := s.peakWho.Load(); who != nil {
		return *who
	}
	return ""
}

// PeakMB is the step's peak memory in MB (10^6 bytes) so far: the highest sampled sum of PSS,
// or, when higher, the highest max RSS of one of the step's commands (a floor that also
// catches processes shorter than the sampling interval).
func (s *Step) PeakMB() float64 {
	return float64(max(s.peakKB.Load(), s.maxRSSKB.Load())) * 1024 / 1e6
}

// MaxRSSMB is the highest max RSS, in MB, of the step's commands (daemons excepted).
func (s *Step) MaxRSSMB() float64 { return float64(s.maxRSSKB.Load()) * 1024 / 1e6 }

// noteMaxRSS records the max RSS (kB) that GNU time wrote to file: its last line (a line
// before it says how a failed command ended).
func (s *Step) noteMaxRSS(file string) { s.noteMaxRSSOver(file, 1) }

// noteMaxRSSOver is noteMaxRSS for a tool that writes divisor times the max RSS in kB.
func (s *Step) noteMaxRSSOver(file string, divisor int64) {
	if file == "" {
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	kb, err := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64)
	if kb /= max(divisor, 1); err == nil && kb > s.maxRSSKB.Load() {
		s.maxRSSKB.Store(kb)
	}
}

// Close stops the daemons (SIGTERM, then SIGKILL after 20 s), kills what is left in the cgroup,
// stops sampling, and removes the cgroup and the work directory (unmounting what the tools
// left mounted there).
func (s *Step) Close() error {
	var errs []error
	for _, f := range s.deferred {
		f()
	}
	for i := len(s.daemons) - 1; i >= 0; i-- {
		if err := stopDaemon(s.daemons[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.cgroup, "cgroup.kill"), []byte("1"), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("killing what is left in the step's cgroup: %w", err))
	}
	close(s.stop)
	<-s.sampled
	syscall.Close(s.cgroupFD)
	for i := 0; ; i++ {
		err := os.Remove(s.cgroup)
		if err == nil || i == 50 {
			if err != nil {
				errs = append(errs, fmt.Errorf("removing the step's cgroup: %w", err))
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := removeTree(s.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func stopDaemon(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not stop within 20 s of SIGTERM; killed", cmd.Args[0])
	}
}

func (s *Step) sample() {
	defer close(s.sampled)
	ticker := time.NewTicker(SampleEvery)
	defer ticker.Stop()
	for {
		dirs := []string{s.cgroup}
		if watched := s.watched.Load(); watched != nil {
			dirs = append(dirs, *watched...)
		}
		if kb, who := cgroupPSS(dirs...); kb > s.peakKB.Load() {
			s.peakKB.Store(kb)
			s.peakWho.Store(&who)
		}
		select {
		case <-s.stop:
			return
		case <-ticker.C:
		}
	}
}

// cgroupPSS sums the PSS (kB) of every process in dirs and the cgroups below them, and says
// which processes hold it. A child the harness has cloned but that has not called exec yet
// still shares the harness's memory: it is skipped. A directory that does not exist counts 0.
func cgroupPSS(dirs ...string) (int64, string) {
	var total int64
	var who []string
	for _, dir := range dirs {
		kb, procs := cgroupTreePSS(dir)
		total, who = total+kb, append(who, procs...)
	}
	return total, strings.Join(who, ", ")
}

// cgroupTreePSS sums the PSS (kB) of every process in dir and the cgroups below it, and names
// each process with its PSS.
func cgroupTreePSS(dir string) (int64, []string) {
	var total int64
	var who []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		procs, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, pid := range strings.Fields(string(procs)) {
			if exe, err := os.Readlink("/proc/" + pid + "/exe"); err != nil || exe == selfExe {
				continue
			}
			kb := processPSS(pid)
			total += kb
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			who = append(who, fmt.Sprintf("%s %d MB", strings.TrimSpace(string(comm)), kb/1000))
		}
		return nil
	})
	return total, who
}

// selfExe is the harness's own executable.
var selfExe, _ = os.Readlink("/proc/self/exe")

// processPSS is the Pss line of /proc/pid/smaps_rollup in kB (0 when the process is gone).
func processPSS(pid string) int64 {
	f, err := os.Open("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "Pss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb
		}
	}
	return 0
}

// CgroupParent creates (if needed) the harness's cgroup in the cgroup v2 hierarchy and
// returns its path.
func CgroupParent(name string) (string, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading mountinfo: %w", err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		fields := strings.Fields(line)
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				dir := filepath.Join(fields[4], name)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return "", fmt.Errorf("creating cgroup %s: %w", dir, err)
				}
				return dir, nil
			}
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted (needed to follow each step's processes)")
}

// removeTree unmounts every mount point under dir (deepest first) and removes dir.
func removeTree(dir string) error {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mountinfo: %w", err)
	}
	var under []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if fields := strings.Fields(line); len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			under = append(under, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(under)))
	for _, m := range under {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing the work directory: %w", err)
	}
	return nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
