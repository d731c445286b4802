// Package sandbox is the OCI runtime of RUN steps in a container that may neither create
// namespaces nor mount: Concourse's unprivileged containers (their seccomp filter refuses
// unshare and mount). buildah, with OCI isolation, calls it as it would call runc: create,
// start, state, kill, delete, each a run of this binary under the name Name.
//
// A step runs chrooted into its root file system as its user. What runc would mount is put in
// place and taken back, so that the step's layer holds only what the step wrote: bind-mounted
// files (secrets, /etc/hosts, /etc/resolv.conf) have their content swapped in, bind-mounted
// directories (cache mounts) are moved in, tmpfs directories start empty, and /dev gets null,
// zero, random, urandom and the like: the devices where the container may make them, else
// stand-ins that read and write as they do (devices.go). /proc and /sys stay as the image has
// them. Namespaces, capabilities and rlimits of the config are not applied, since none can be.
package sandbox

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Name is the base name this binary runs under when buildah calls it as a runtime.
const Name = "buildah-image-resource-sandbox"

// Main runs one runtime command: args are the arguments after the program name. It returns the
// exit code; errors go to stderr in one line.
func Main(args []string, stderr io.Writer) int {
	if root, rest, ok := initArgs(args); ok {
		return initStep(root, rest, stderr)
	}
	if err := run(args); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Name, err)
		return 1
	}
	return 0
}

func run(args []string) error {
	global := flag.NewFlagSet(Name, flag.ContinueOnError)
	root := global.String("root", "", "directory holding the state of every step")
	global.String("log", "", "ignored (runc's)")
	global.String("log-format", "", "ignored (runc's)")
	global.Bool("systemd-cgroup", false, "ignored: no cgroups here")
	if err := global.Parse(args); err != nil {
		return err
	}
	if *root == "" {
		return errors.New("--root is required")
	}
	rest := global.Args()
	if len(rest) == 0 {
		return errors.New("no command")
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "create":
		return create(*root, rest)
	case "start", "state", "delete", "kill":
		id, more, err := stepID(cmd, rest)
		if err != nil {
			return err
		}
		st := step{dir: filepath.Join(*root, id), id: id}
		switch cmd {
		case "start":
			return st.start()
		case "state":
			return st.state(os.Stdout)
		case "kill":
			return st.kill(more)
		default:
			return st.delete()
		}
	case "probe-mount":
		return probeMount(rest)
	}
	return fmt.Errorf("unknown command %q", cmd)
}

// initArgs recognises the arguments create gives the step's first process.
func initArgs(args []string) (root string, rest []string, ok bool) {
	if len(args) >= 3 && args[0] == "--root" && args[2] == "init" {
		return args[1], args[3:], true
	}
	return "", nil, false
}

// stepID reads "[--force] ID [more]" after a command.
func stepID(cmd string, args []string) (id string, more []string, err error) {
	var rest []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		return "", nil, fmt.Errorf("%s: no container id", cmd)
	}
	if err := validID(rest[0]); err != nil {
		return "", nil, err
	}
	return rest[0], rest[1:], nil
}

func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container id %q: expected a plain name", id)
	}
	return nil
}

// step is the state of one RUN step: dir holds its pid, the start fifo and its bundle's path.
type step struct {
	dir string
	id  string
}

func (s step) pidFile() string    { return filepath.Join(s.dir, "pid") }
func (s step) fifo() string       { return filepath.Join(s.dir, "start") }
func (s step) bundleFile() string { return filepath.Join(s.dir, "bundle") }

// create reads the bundle's config.json and starts the step's first process, which waits for
// start. The process outlives create: buildah reaps it for the step's exit status.
func create(root string, args []string) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	bundle := fs.String("bundle", ".", "bundle directory")
	pidFile := fs.String("pid-file", "", "where to write the pid")
	console := fs.String("console-socket", "", "terminal socket")
	fs.Bool("no-new-keyring", false, "ignored")
	fs.Bool("no-pivot", false, "ignored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("create: expected one container id")
	}
	id := fs.Arg(0)
	if err := validID(id); err != nil {
		return err
	}
	if *console != "" {
		return errors.New("create: a terminal is not supported")
	}
	bundleDir, err := filepath.Abs(*bundle)
	if err != nil {
		return err
	}
	if _, err := readSpec(bundleDir); err != nil {
		return err
	}
	s := step{dir: filepath.Join(root, id), id: id}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := os.WriteFile(s.bundleFile(), []byte(bundleDir), 0o600); err != nil {
		return err
	}
	if err := syscall.Mkfifo(s.fifo(), 0o600); err != nil {
		return fmt.Errorf("create: start fifo: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The step's stdio is create's (buildah's pipes); it is not waited for here.
	init := &exec.Cmd{Path: self, Args: []string{os.Args[0], "--root", root, "init", id},
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := init.Start(); err != nil {
		return fmt.Errorf("create: starting the step: %w", err)
	}
	pid := []byte(strconv.Itoa(init.Process.Pid))
	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, pid, 0o600); err != nil {
			return err
		}
	}
	return os.WriteFile(s.pidFile(), pid, 0o600)
}

func readSpec(bundle string) (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("create: config.json: %w", err)
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errors.New("create: config.json has no process to run")
	}
	if spec.Process.Terminal {
		return nil, errors.New("create: a terminal is not supported")
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, errors.New("create: config.json has no root file system")
	}
	if !filepath.IsAbs(spec.Root.Path) {
		spec.Root.Path = filepath.Join(bundle, spec.Root.Path)
	}
	return &spec, nil
}

// initStep is the step's first process: it waits for start, puts the mounts' stand-ins in
// place, runs the step, takes the stand-ins back and exits as the step did. A step whose
// stand-ins cannot all be taken back fails, so that no secret stays in a layer.
func initStep(root string, args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, Name+": init: expected one container id")
		return 1
	}
	s := step{dir: filepath.Join(root, args[0]), id: args[0]}
	bundle, err := os.ReadFile(s.bundleFile())
	if err != nil {
		fmt.Fprintf(stderr, "%s: init: %v\n", Name, err)
		return 1
	}
	spec, err := readSpec(string(bundle))
	if err != nil {
		fmt.Fprintf(stderr, "%s: init: %v\n", Name, err)
		return 1
	}
	// Blocks until start opens the fifo for reading.
	f, err := os.OpenFile(s.fifo(), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte{0})
		f.Close()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: init: %v\n", Name, err)
		return 1
	}
	return runStep(spec, stderr)
}
