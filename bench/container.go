package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/imagetest/resourceimage"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// UnprivilegedFlags run the resource container as Concourse runs one without privileged: true:
// Docker's default capabilities, seccomp and AppArmor profiles (no mount, no namespaces), so
// that RUN steps run under pkg/sandbox. No user namespace: a remapping daemon refuses the host
// network (pkg/imagetest covers that case).
var UnprivilegedFlags = []string{"--network", "host"}

// ContainerFlags give the resource container what chroot isolation needs without --privileged
// (which fails on the bench machine), as pkg/imagetest runs it: every capability but
// CAP_SYS_RESOURCE, no seccomp or AppArmor profile, and the host network (the bench's registry
// listens on 127.0.0.1).
var ContainerFlags = []string{
	"--network", "host",
	"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
	"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
}

// containerWorkDir is where Concourse mounts a put's work directory; maxRSSFile, in it, receives
// out's max RSS from the image's busybox time.
const (
	containerWorkDir = "/tmp/build/put"
	maxRSSFile       = "maxrss-container"
)

// ContainerHost is a Docker daemon of the harness's own (its socket, data root and cgroups; no
// other daemon on the machine is touched) holding the resource image, as pkg/imagetest builds it.
// Its root storage is overlay2, as a Concourse container's root is overlayfs.
type ContainerHost struct {
	Docker     []string        // the docker CLI and --host
	Image      string          // the resource image
	Built      time.Duration   // building the image (static binaries and docker build)
	StartRuns  []time.Duration // `docker run ... true`, the container start alone, measured 3 times
	Info       string          // the daemon's version, storage driver and cgroup setup
	cgroupRoot string          // the hierarchy where containers' processes are sampled
	rssScale   int64           // busybox time's %M over the max RSS in kB (0: unknown, not used)
	dir        string
	dockerd    *exec.Cmd
	exited     chan struct{}
	log        testharness.LockedBuffer
}

// StartContainerHost starts dockerd with its state in dir, builds the resource image from the
// sources in moduleRoot and times the start of an empty container.
func StartContainerHost(ctx context.Context, dir, moduleRoot string) (*ContainerHost, error) {
	h := &ContainerHost{dir: dir, Image: "localhost/buildah-image-resource-bench:latest", exited: make(chan struct{})}
	if err := h.startDockerd(ctx); err != nil {
		h.Close()
		return nil, err
	}
	started := time.Now()
	if _, err := resourceimage.Build(ctx, resourceimage.Options{ModuleRoot: moduleRoot, Docker: h.Docker, Tag: h.Image}); err != nil {
		h.Close()
		return nil, fmt.Errorf("building the resource image: %w", err)
	}
	h.Built = time.Since(started)
	h.rssScale = busyboxTimeScale(ctx)
	if err := h.timeStart(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// startDockerd starts the daemon (cgroupfs driver, so that a container's cgroup parent is a plain
// path the harness samples) and waits until it answers.
func (h *ContainerHost) startDockerd(ctx context.Context) error {
	sock := filepath.Join(h.dir, "docker.sock")
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return err
	}
	h.Docker = []string{"docker", "--host", "unix://" + sock}
	h.dockerd = exec.Command("dockerd", "--host", "unix://"+sock, "--data-root", filepath.Join(h.dir, "data"),
		"--exec-root", filepath.Join(h.dir, "exec"), "--pidfile", filepath.Join(h.dir, "dockerd.pid"),
		"--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs",
		"--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false")
	h.dockerd.Stdout, h.dockerd.Stderr = &h.log, &h.log
	h.dockerd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.dockerd.Start(); err != nil {
		close(h.exited)
		return fmt.Errorf("starting dockerd: %w", err)
	}
	go func() { h.dockerd.Wait(); close(h.exited) }()
	if err := waitUnixHTTP(ctx, sock, "/_ping", 60*time.Second); err != nil {
		return fmt.Errorf("dockerd: %w\n%s", err, tail(h.log.String(), 20))
	}
	info, err := resourceimage.Run(ctx, time.Minute, nil, h.Docker, "info", "--format",
		"{{.ServerVersion}} {{.Driver}} {{.CgroupDriver}} {{.CgroupVersion}}")
	if err != nil {
		return err
	}
	fields := strings.Fields(info)
	if len(fields) != 4 || fields[1] != "overlay2" {
		return fmt.Errorf("dockerd (version, storage driver, cgroup driver and version: %q): the container's root must be overlay2", info)
	}
	h.Info = fmt.Sprintf("dockerd %s, root storage %s, %s cgroups v%s", fields[0], fields[1], fields[2], fields[3])
	if fields[3] == "1" {
		h.cgroupRoot = cgroupMount("cgroup", "memory")
	} else {
		h.cgroupRoot = cgroupMount("cgroup2", "")
	}
	if h.cgroupRoot == "" {
		return fmt.Errorf("no cgroup hierarchy to sample containers in (%s)", h.Info)
	}
	return nil
}

// busyboxTimeScale is what busybox time's %M is multiplied by: Debian's busybox 1.35 takes
// ru_maxrss (kB) for a page count and writes it times 4 (the page size in kB). The image's busybox
// is the host's (testharness copies it), so both times run the host's busybox here; 0 when
// it cannot be told (the floor is then not used).
func busyboxTimeScale(ctx context.Context) int64 {
	dir, err := os.MkdirTemp("", "bench-rss-")
	if err != nil {
		return 0
	}
	defer os.RemoveAll(dir)
	gnu, bb := filepath.Join(dir, "gnu"), filepath.Join(dir, "busybox")
	busybox := testharness.BusyboxPath
	if err := exec.CommandContext(ctx, gnuTime, "--format=%M", "--output="+gnu, "--",
		busybox, "time", "-f", "%M", "-o", bb, busybox, "sh", "-c", "x=$("+busybox+" seq 1 300000)").Run(); err != nil {
		return 0
	}
	var gnuKB, bbKB int64
	if _, err := fmt.Sscan(readString(gnu), &gnuKB); err != nil || gnuKB <= 0 {
		return 0
	}
	if _, err := fmt.Sscan(readString(bb), &bbKB); err != nil || bbKB <= 0 {
		return 0
	}
	// GNU time sees busybox time itself too, smaller than the child (a few MB of seq's output in
	// a shell variable): the ratio rounds to the factor.
	return max(1, (bbKB+gnuKB/2)/gnuKB)
}

// readString is a file's content, or "" when it cannot be read.
func readString(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// timeStart times `docker run` of `true` as a put runs out (runArgs: the same flags, a cgroup
// parent of its own, a mount, the environment, stdin, busybox time), three times: what every
// in-container put spends starting and removing its container.
func (h *ContainerHost) timeStart(ctx context.Context) error {
	for i := range 3 {
		empty, err := os.MkdirTemp(h.dir, "empty-")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("buildah-image-resource-bench-%d-empty-%d", os.Getpid(), i)
		args := h.runArgs(name, name, empty, ContainerFlags, "true")
		started := time.Now()
		_, err = resourceimage.Run(ctx, time.Minute, strings.NewReader("{}"), h.Docker[:1], args...)
		h.StartRuns = append(h.StartRuns, time.Since(started))
		removeCgroupEverywhere(name)
		os.RemoveAll(empty)
		if err != nil {
			return fmt.Errorf("an empty container: %w", err)
		}
	}
	return nil
}

// StartMedian is the median of StartRuns.
func (h *ContainerHost) StartMedian() time.Duration {
	runs := slices.Clone(h.StartRuns)
	slices.Sort(runs)
	if len(runs) == 0 {
		return 0
	}
	return runs[len(runs)/2]
}

// Close stops dockerd (SIGTERM, SIGKILL after 30 s) and removes its state.
func (h *ContainerHost) Close() error {
	var errs []error
	if h.dockerd != nil && h.dockerd.Process != nil {
		_ = h.dockerd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(30 * time.Second):
			errs = append(errs, errors.New("dockerd did not stop within 30 s of SIGTERM; killed"))
			_ = h.dockerd.Process.Kill()
			<-h.exited
		}
	}
	if err := removeTree(h.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// InContainer is a peer of ours run as Concourse runs a resource: `docker run` of the resource
// image per put, root on overlay2, the step's work directory bind-mounted at /tmp/build/put and
// given as argv[1], the request on stdin. Its wall time includes starting and removing the
// container; its memory is the container's processes (sampled in the container's cgroup, with
// out's max RSS from busybox time as a floor; the docker CLI, dockerd and containerd's shim are
// the worker's, not counted).
type InContainer struct {
	Ours Ours
	Host *ContainerHost
	// Unprivileged runs it with UnprivilegedFlags rather than ContainerFlags.
	Unprivileged bool
}

// Name is the host peer's name, in a container: "ours (in a container)", "ours (cache mounts,
// in a container)".
func (c InContainer) Name() string {
	where := "in a container"
	if c.Unprivileged {
		where = "in an unprivileged container"
	}
	name := c.Ours.Name()
	if strings.HasSuffix(name, ")") {
		return strings.TrimSuffix(name, ")") + ", " + where + ")"
	}
	return name + " (" + where + ")"
}

// HostPeer is the name of the same put on the host.
func (c InContainer) HostPeer() string { return c.Ours.Name() }

func (c InContainer) Check() error {
	if c.Host == nil {
		return errors.New("no container host")
	}
	return nil
}

func (c InContainer) Put(ctx context.Context, s *Step, job Job) error {
	request, err := c.Ours.request(job)
	if err != nil {
		return err
	}
	name := "buildah-image-resource-bench-" + filepath.Base(s.Dir)
	cgroup := fmt.Sprintf("buildah-image-resource-bench-%d-%s", os.Getpid(), filepath.Base(s.Dir))
	s.Watch(filepath.Join(c.Host.cgroupRoot, cgroup))
	s.Defer(func() { removeCgroupEverywhere(cgroup) })
	flags := ContainerFlags
	if c.Unprivileged {
		flags = UnprivilegedFlags
	}
	args := c.Host.runArgs(name, cgroup, s.Dir, flags, "/opt/resource/out", containerWorkDir)
	cmd := s.Outside(ctx, c.Host.Docker[0], args...)
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stdout = bytes.NewReader(request), &stdout
	err = s.RunOutside(cmd)
	noteInner(s, filepath.Join(s.Dir, maxRSSFile))
	if c.Host.rssScale > 0 {
		s.noteMaxRSSOver(filepath.Join(s.Dir, maxRSSFile), c.Host.rssScale)
	}
	if err != nil {
		// A killed docker CLI leaves its container running.
		resourceimage.Run(context.WithoutCancel(ctx), time.Minute, nil, c.Host.Docker, "rm", "--force", name)
		return err
	}
	return checkVersion(stdout.Bytes())
}

// runArgs are docker's arguments (after the docker command) for a put's container: named name, in
// cgroup (a child of the root), workDir mounted at /tmp/build/put, Concourse's environment, and
// command run under the image's busybox time, which writes its elapsed time and max RSS (kB, with
// its children's) to maxRSSFile in the work dir: how much of the put is out's own, and the floor
// of its peak, as GNU time gives it on the host.
func (h *ContainerHost) runArgs(name, cgroup, workDir string, flags []string, command ...string) []string {
	args := slices.Concat(h.Docker[1:], []string{"run", "--rm", "--interactive", "--name", name, "--cgroup-parent", "/" + cgroup},
		flags, []string{"--volume", workDir + ":" + containerWorkDir})
	for _, env := range ConcourseEnv {
		args = append(args, "--env", env)
	}
	args = append(args, h.Image, "/bin/busybox", "time", "-f", "%e\n%M", "-o", containerWorkDir+"/"+maxRSSFile)
	return append(args, command...)
}

// noteInner records the elapsed seconds busybox time wrote on the first line of file.
func noteInner(s *Step, file string) {
	var seconds float64
	if _, err := fmt.Sscan(readString(file), &seconds); err == nil && seconds > 0 {
		s.NoteInner(time.Duration(seconds * float64(time.Second)))
	}
}

// cgroupMount is the mount point of the cgroup hierarchy of type fstype ("cgroup2", or "cgroup"
// with the controller option, e.g. "memory"), or "".
func cgroupMount(fstype, option string) string {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		_, after, ok := strings.Cut(line, " - ")
		fields, before := strings.Fields(after), strings.Fields(line)
		if !ok || len(fields) < 3 || len(before) < 5 || fields[0] != fstype {
			continue
		}
		if option == "" || slices.Contains(strings.Split(fields[2], ","), option) {
			return before[4]
		}
	}
	return ""
}

// removeCgroupEverywhere removes the cgroup directory name (a child of the root) in every
// cgroup hierarchy where the container runtime made it, once the container is gone.
func removeCgroupEverywhere(name string) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		_, after, ok := strings.Cut(line, " - ")
		fields, before := strings.Fields(after), strings.Fields(line)
		if ok && len(fields) > 0 && len(before) > 4 && (fields[0] == "cgroup" || fields[0] == "cgroup2") {
			removeEmptyDir(filepath.Join(before[4], name))
		}
	}
}

// removeEmptyDir removes a cgroup directory, retrying for a few seconds while its processes end.
func removeEmptyDir(dir string) {
	for range 50 {
		if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
