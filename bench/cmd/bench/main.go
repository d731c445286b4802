// Command bench runs issue 6's benchmarks: this resource against docker-image-resource's flow,
// the buildah CLI and BuildKit, on the same corpus, and writes docs/benchmarks.md. Run it
// through bench/run, which installs and builds what it needs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/bench"
)

func main() {
	bin := flag.String("bin", "", "directory holding this resource's in and out binaries (required)")
	buildkit := flag.String("buildkit", "", "directory holding buildkitd and buildctl")
	rootfs := flag.String("debian-rootfs", "", "tarball of a debootstrap --variant=minbase bookworm root filesystem")
	bases := flag.String("bases", "debian", "bases to run the scenarios on, in order (debian, busybox)")
	reps := flag.Int("reps", 3, "repetitions of S1, S2 and S3")
	fan := flag.Int("fan", 4, "puts of the S4 fan-out")
	blob := flag.Int("blob-mb", 100, "MB the app's RUN writes")
	smoke := flag.Bool("smoke", false, "one repetition, busybox base only, 2 fan-out puts, a 20 MB RUN output")
	out := flag.String("out", "docs/benchmarks.md", "the report to write")
	jsonOut := flag.String("json", "", "also write the measurements as JSON here (for linkcompare)")
	oursVersion := flag.String("ours-version", "", "version of this resource to report (e.g. its commit)")
	only := flag.String("only", "", "scenarios to run, e.g. S3,S5 (default all: "+strings.Join(bench.Scenarios, ",")+
		"); S2/S3 (S2m) without S1 (S1m) first run S1's (S1m's) last put, unreported")
	tools := flag.String("peers", "docker,buildah,buildkit", "peers to compare with ours (docker, buildah, buildkit)")
	packages := flag.String("packages", "python3", "what S5's RUN installs with apt-get install")
	shape := flag.Bool("shape", false, "put the registry behind a shaped link (issue 19; -shape-delay, -shape-rate)")
	shapeDelay := flag.Duration("shape-delay", bench.DefaultShapeDelay, "with -shape: delay added to every registry request")
	shapeRate := flag.Float64("shape-rate", bench.DefaultShapeRate/1e6, "with -shape: MB/s of every registry stream")
	inContainer := flag.Bool("in-container", true, "also run ours in the resource image with docker run (a dockerd of the harness's own)")
	unprivileged := flag.Bool("unprivileged", true, "with -in-container, also run ours in an unprivileged container (S1-S3)")
	moduleRoot := flag.String("module-root", ".", "this repository, whose sources the resource image is built from")
	command := flag.String("command", "", "how the run was started, for the report (bench/run gives it)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "bench: -bin is required")
		os.Exit(2)
	}
	cfg := config{bin: *bin, buildkit: *buildkit, rootfs: *rootfs, bases: strings.Split(*bases, ","), reps: *reps,
		fan: *fan, blobMB: *blob, out: *out, oursVersion: *oursVersion, mode: "full", packages: *packages,
		peers: strings.Split(*tools, ","), inContainer: *inContainer, unprivileged: *unprivileged, moduleRoot: *moduleRoot,
		command: *command, json: *jsonOut}
	if *only != "" {
		cfg.only = strings.Split(*only, ",")
		if err := checkScenarios(cfg.only); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -only: %v\n", err)
			os.Exit(2)
		}
	}
	if *shape {
		cfg.link = bench.Shape{Delay: *shapeDelay, Rate: *shapeRate * 1e6}
	}
	if *smoke {
		cfg.mode, cfg.reps, cfg.fan, cfg.blobMB, cfg.bases = "smoke", 1, 2, 20, []string{"busybox"}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	bin, buildkit, rootfs, out, oursVersion, mode, packages string
	moduleRoot, command, json                               string
	bases, only, peers                                      []string
	reps, fan, blobMB                                       int
	link                                                    bench.Shape // the registry's link (-shape); zero: loopback
	inContainer, unprivileged                               bool
}

func run(ctx context.Context, cfg config) error {
	started := time.Now()
	work, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	logDir := filepath.Join(os.TempDir(), "bench-logs-"+started.Format("20060102-150405"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	cgroup, err := bench.CgroupParent(fmt.Sprintf("buildah-image-resource-bench-%d", os.Getpid()))
	if err != nil {
		return err
	}
	defer os.Remove(cgroup)

	if err := os.MkdirAll(filepath.Join(work, "registry"), 0o755); err != nil {
		return err
	}
	reg, err := bench.StartShapedRegistry(filepath.Join(work, "registry"), cfg.link)
	if err != nil {
		return err
	}
	defer reg.Close()
	fmt.Fprintf(os.Stderr, "bench: %s run; registry (counted, %s) at %s; step logs in %s\n", cfg.mode, cfg.link, reg.Host, logDir)

	mirror, err := bench.StartMirrorProxy()
	if err != nil {
		return err
	}
	defer mirror.Close()

	ours := bench.Ours{Bin: cfg.bin, UseGet: true}
	if err := ours.Check(); err != nil {
		return fmt.Errorf("this resource's binaries: %w", err)
	}
	peers, skipped, err := choosePeers(cfg, reg.Host)
	if err != nil {
		return err
	}
	host, why := startContainerHost(ctx, cfg, filepath.Join(work, "container-host"))
	if host != nil {
		defer host.Close()
	} else if why != "" {
		skipped = append(skipped, [2]string{bench.InContainer{Ours: ours}.Name(), why})
	}
	oursCM := bench.Ours{Bin: cfg.bin, UseGet: true, CacheMounts: true}
	runner := &bench.Runner{Registry: reg, Mirror: mirror, Work: work, Cgroup: cgroup, LogDir: logDir, Reps: cfg.reps,
		FanOut: cfg.fan, BlobMB: cfg.blobMB, Packages: cfg.packages, Only: cfg.only, Progress: os.Stderr,
		Peers:    slices.Concat(withContainer(ours, host), unprivilegedPeer(ours, host, cfg.unprivileged), peers),
		FanPeers: slices.Concat(withContainer(ours, host), peers, []bench.Peer{bench.Ours{Bin: cfg.bin}}),
		PkgPeers: slices.Concat(withContainer(oursCM, host), []bench.Peer{ours})}
	runner.PlatformPeers = []bench.Peer{ours}
	for _, p := range peers {
		if _, ok := p.(bench.BuildKit); ok {
			runner.PlatformPeers = append(runner.PlatformPeers, p)
		}
	}
	for _, p := range peers {
		if _, ok := p.(bench.BuildKit); ok {
			runner.PkgPeers = append(runner.PkgPeers, p)
		}
	}

	report := &bench.Report{Date: started, Mode: cfg.mode, Reps: cfg.reps, Fan: cfg.fan, BlobMB: cfg.blobMB, Skipped: skipped,
		Ours: ours.Name(), LoadStart: loadAverage(), Command: cfg.command, Commit: cfg.oursVersion, Only: cfg.only}
	if host != nil {
		report.Container = bench.Container{Info: fmt.Sprintf("%s; the image built in %s", host.Info, host.Built.Round(time.Second)),
			Built: host.Built, StartRuns: host.StartRuns, Start: host.StartMedian()}
	}
	for _, name := range cfg.bases {
		img, description, tag, err := baseImage(name, cfg.rootfs)
		if err != nil {
			return err
		}
		base, err := bench.PublishBase(ctx, cfg.bin, reg.Host, name, tag, description, img, filepath.Join(work, "get-"+name))
		if err != nil {
			return err
		}
		report.Bases = append(report.Bases, base)
		tables, err := runner.Run(ctx, base)
		if err != nil {
			return fmt.Errorf("scenarios on %s: %w", name, err)
		}
		report.Tables = append(report.Tables, tables...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	if wantsPlatforms(cfg) {
		tables, err := runPlatforms(ctx, cfg, runner, reg.Host, work, report)
		if err != nil {
			return err
		}
		report.Tables = append(report.Tables, tables...)
	}

	report.Duration = time.Since(started)
	report.Machine = append(machine(), [2]string{"load average (1, 5, 15 min) at start → end (other work on the machine slows every tool)",
		report.LoadStart + " → " + loadAverage()})
	if cfg.rootfs != "" {
		report.Machine = append(report.Machine, [2]string{"unpacking the Debian base's root filesystem with `tar -x` (every tool unpacks the base before its first RUN)",
			unpackTime(cfg.rootfs, work) + " in " + os.TempDir() + ", " + unpackTime(cfg.rootfs, "/dev/shm") + " in /dev/shm (tmpfs)"})
	}
	report.Versions = versions(cfg)
	if err := writeReport(cfg.out, report); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if cfg.json != "" {
		if err := bench.WriteTables(cfg.json, bench.Tables{Link: cfg.link, Tables: report.Tables}); err != nil {
			return fmt.Errorf("writing the measurements: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s in %s\n", cfg.out, report.Duration.Round(time.Second))
	return nil
}

// startContainerHost starts the Docker daemon and builds the image of ours in a container, unless
// -in-container=false. When it cannot, it says why (the report lists it; the run goes on).
func startContainerHost(ctx context.Context, cfg config, dir string) (*bench.ContainerHost, string) {
	if !cfg.inContainer {
		return nil, ""
	}
	root, err := filepath.Abs(cfg.moduleRoot)
	if err != nil {
		return nil, err.Error()
	}
	started := time.Now()
	host, err := bench.StartContainerHost(ctx, dir, root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: skipping ours in a container: %v\n", err)
		return nil, firstLine(err.Error())
	}
	fmt.Fprintf(os.Stderr, "bench: container host ready in %s (%s; empty container %s)\n",
		time.Since(started).Round(time.Second), host.Info, host.StartMedian().Round(time.Millisecond))
	return host, ""
}

// unprivilegedPeer is p in an unprivileged container, when there is a container host and it is
// asked for.
func unprivilegedPeer(p bench.Ours, host *bench.ContainerHost, asked bool) []bench.Peer {
	if host == nil || !asked {
		return nil
	}
	return []bench.Peer{bench.InContainer{Ours: p, Host: host, Unprivileged: true}}
}

// withContainer is p, followed by p in a container when there is a container host.
func withContainer(p bench.Ours, host *bench.ContainerHost) []bench.Peer {
	if host == nil {
		return []bench.Peer{p}
	}
	return []bench.Peer{p, bench.InContainer{Ours: p, Host: host}}
}

// unpackTime is how long tar takes to unpack rootfs in a new directory under dir, after
// which the directory is removed: what the work directories' file system charges for
// creating the base's files, which every tool pays.
func unpackTime(rootfs, dir string) string {
	target, err := os.MkdirTemp(dir, "bench-unpack-")
	if err != nil {
		return "?"
	}
	defer os.RemoveAll(target)
	started := time.Now()
	if err := exec.Command("tar", "-C", target, "-xf", rootfs).Run(); err != nil {
		return "? (" + err.Error() + ")"
	}
	return fmt.Sprintf("%.1f s", time.Since(started).Seconds())
}

// baseImage makes the base called name and says what it is and its tag.
func baseImage(name, rootfs string) (v1.Image, string, string, error) {
	switch name {
	case "busybox":
		img, description, err := bench.BusyboxBase()
		return img, description, "1.36", err
	case "debian":
		if rootfs == "" {
			return nil, "", "", fmt.Errorf("the debian base needs -debian-rootfs")
		}
		img, description, err := bench.DebianBase(rootfs)
		return img, description, "bookworm", err
	}
	return nil, "", "", fmt.Errorf("unknown base %q (busybox, debian)", name)
}

// keptMarker starts the part of a report that is not the harness's: sections written from other
// runs (bench/run-network's, partial runs'), which writeReport carries over to the new report.
const keptMarker = "<!-- Kept by bench/run: the sections below come from other runs. -->"

func writeReport(path string, report *bench.Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var kept string
	if old, err := os.ReadFile(path); err == nil {
		if i := strings.Index(string(old), keptMarker); i >= 0 {
			kept = "\n" + string(old[i:])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.Write(f); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(kept); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wantsPlatforms says whether S6 or S6n run: asked with -only, or by default in a full run (the
// smoke run leaves them out: they need QEMU and a foreign busybox).
func wantsPlatforms(cfg config) bool {
	if len(cfg.only) == 0 {
		return cfg.mode == "full"
	}
	return slices.ContainsFunc(cfg.only, func(id string) bool { return strings.EqualFold(id, "S6") || strings.EqualFold(id, "S6n") })
}

// runPlatforms publishes the two-platform busybox base and runs S6 and S6n on it. Without the
// foreign busybox, they are listed as skipped.
func runPlatforms(ctx context.Context, cfg config, runner *bench.Runner, host, work string, report *bench.Report) ([]bench.Table, error) {
	idx, description, err := bench.BusyboxIndex()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: skipping S6, S6n: %v\n", err)
		report.Skipped = append(report.Skipped, [2]string{"S6, S6n (two platforms)", err.Error()})
		return nil, nil
	}
	base, err := bench.PublishIndex(ctx, cfg.bin, host, "busybox-platforms", "1.36", description, idx, filepath.Join(work, "get-busybox-platforms"))
	if err != nil {
		return nil, err
	}
	report.Bases = append(report.Bases, base)
	tables, err := runner.RunPlatforms(ctx, base, max(cfg.blobMB/5, 1))
	if err != nil {
		return nil, fmt.Errorf("scenarios on %s: %w", base.Name, err)
	}
	return tables, nil
}

// checkScenarios says which of ids is not a scenario.
func checkScenarios(ids []string) error {
	for _, id := range ids {
		if !slices.ContainsFunc(bench.Scenarios, func(s string) bool { return strings.EqualFold(s, id) }) {
			return fmt.Errorf("unknown scenario %q (%s)", id, strings.Join(bench.Scenarios, ", "))
		}
	}
	return nil
}

// choosePeers returns the peers of cfg.peers that can run here, and why the others cannot.
func choosePeers(cfg config, registryHost string) ([]bench.Peer, [][2]string, error) {
	all := map[string]bench.Peer{"docker": bench.Docker{}, "buildah": bench.Buildah{},
		"buildkit": bench.BuildKit{Dir: cfg.buildkit, Registry: registryHost}}
	var peers []bench.Peer
	var skipped [][2]string
	for _, name := range cfg.peers {
		if name = strings.TrimSpace(name); name == "" {
			continue // -peers '' compares ours with nothing
		}
		p, ok := all[name]
		if !ok {
			return nil, nil, fmt.Errorf("unknown peer %q (docker, buildah, buildkit)", name)
		}
		if err := p.Check(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: skipping %s: %v\n", p.Name(), err)
			skipped = append(skipped, [2]string{p.Name(), err.Error()})
			continue
		}
		peers = append(peers, p)
	}
	return peers, skipped, nil
}

func machine() [][2]string {
	mem := "?"
	if meminfo, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(meminfo), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
	}
	cpu := "?"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return [][2]string{
		{"CPUs (nproc)", fmt.Sprint(runtime.NumCPU())},
		{"CPU model", cpu},
		{"memory", mem},
		{"kernel", readTrim("/proc/sys/kernel/osrelease")},
		{"OS", "Debian " + readTrim("/etc/debian_version")},
		{"disk", "work directories under " + os.TempDir()},
	}
}

func versions(cfg config) [][2]string {
	ours := cfg.oursVersion
	if ours == "" {
		ours = "?"
	}
	v := [][2]string{{"this resource (out, in)", ours}, {"Go", runtime.Version()}}
	for _, c := range [][]string{
		{"dockerd", "--version"}, {"/usr/bin/docker", "--version"}, {"containerd", "--version"},
		{"buildah", "--version"}, {filepath.Join(cfg.buildkit, "buildkitd"), "--version"},
		{filepath.Join(cfg.buildkit, "buildctl"), "--version"}, {"runc", "--version"}, {"docker-registry", "--version"},
	} {
		out, err := exec.Command(c[0], c[1:]...).Output()
		text := strings.TrimSpace(firstLine(string(out)))
		if err != nil {
			text = "not available"
		}
		v = append(v, [2]string{filepath.Base(c[0]), text})
	}
	return v
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	fields := strings.Fields(readTrim("/proc/loadavg"))
	if len(fields) < 3 {
		return "?"
	}
	return strings.Join(fields[:3], " ")
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
