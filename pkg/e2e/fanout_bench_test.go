package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// debianRootfs is the Debian bookworm minbase rootfs tar that bench/ caches (debootstrap output).
const debianRootfs = "/var/cache/buildah-image-resource-bench/debian-bookworm-minbase.tar"

// BenchmarkOutFanOut is the benchmark report's S4 put: a fresh worker builds a small Dockerfile
// (LABEL, COPY of one file, RUN) on a big base and pushes it to a registry holding the base in
// another repository (a fresh registry for each put). The base is Debian minbase when bench/
// cached it, else a synthetic ~120 MB rootfs of many files. "load_base" uses the base a get
// saved; "pulled" lets buildah pull it. It reports the wall seconds of out, the bytes uploaded,
// and the seconds from the start of out to each phase its log shows (-v prints the timestamped
// log of the last put).
func BenchmarkOutFanOut(b *testing.B) {
	base := savedBase(b, fanOutBase(b))
	for _, variant := range []struct {
		name   string
		params map[string]any
	}{
		{"load_base", map[string]any{"build": "ctx", "load_base": "base"}},
		{"pulled", map[string]any{"build": "ctx"}},
	} {
		b.Run(variant.name, func(b *testing.B) {
			bin := filepath.Join(testharness.Binaries(b), "out")
			var total phaseTimes
			var uploaded int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				reg, work := fanOutWorker(b, base)
				b.StartTimer()
				times, log := timedOut(b, bin, map[string]any{"source": source(reg, "fanout/app"), "params": variant.params}, work)
				total.add(times)
				_, n := reg.BlobUploads()
				uploaded += n
				if i == b.N-1 {
					b.Logf("out log, seconds since start:\n%s", log)
				}
			}
			total.report(b, b.N)
			b.ReportMetric(float64(uploaded)/float64(b.N), "uploaded-B")
		})
	}
}

// fanOutWorker starts a registry holding base as library/debian:bookworm and a work directory
// with the get of it (base/) and the build context (ctx/).
func fanOutWorker(b *testing.B, base v1.Image) (*testharness.Registry, string) {
	b.Helper()
	reg := testharness.StartInProcess(b)
	baseRef := reg.Ref("library/debian:bookworm")
	digest := reg.Push(b, baseRef, base)
	work := b.TempDir()
	getRes := testharness.Run(b, "in", map[string]any{"source": source(reg, "library/debian", "tag", "bookworm"),
		"version": api.Version{Digest: digest.String(), Tag: "bookworm"}}, mkdir(b, filepath.Join(work, "base")))
	if getRes.ExitCode != 0 {
		b.Fatal(getRes.Stderr)
	}
	writeFile(b, filepath.Join(work, "ctx/Dockerfile"), "FROM "+baseRef+"\nLABEL org.example.fanout=1\n"+
		"COPY app.txt /app.txt\nRUN echo built > /built.txt\n")
	writeFile(b, filepath.Join(work, "ctx/app.txt"), "app")
	reg.ResetRequests()
	return reg, work
}

// savedBase writes img into an OCI layout once and returns it as read from there, so that each
// push of it sends the saved compressed blobs rather than compressing again.
func savedBase(b *testing.B, img v1.Image) v1.Image {
	b.Helper()
	p, err := layout.Write(b.TempDir(), empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		b.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		b.Fatal(err)
	}
	saved, err := p.Image(digest)
	if err != nil {
		b.Fatal(err)
	}
	return saved
}

// fanOutBase is the benchmark's base image: one layer, Debian minbase or a synthetic rootfs.
func fanOutBase(b *testing.B) v1.Image {
	b.Helper()
	path := debianRootfs
	if _, err := os.Stat(path); err != nil {
		path = filepath.Join(b.TempDir(), "rootfs.tar")
		writeSyntheticRootfs(b, path, 120<<20)
	}
	layer, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		b.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		b.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"bash"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return img
}

// writeSyntheticRootfs writes a tar of about size bytes: busybox as /bin/sh and many files of
// compressible (text-like) content, as a distribution's rootfs has.
func writeSyntheticRootfs(b *testing.B, path string, size int) {
	b.Helper()
	testharness.RequireFile(b, testharness.BusyboxPath, "busybox-static")
	busybox, err := os.ReadFile(testharness.BusyboxPath)
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, mode int64, data []byte, typ byte, link string) {
		hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: typ, Linkname: link, ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "tmp/", "usr/", "usr/share/"} {
		add(d, 0o755, nil, tar.TypeDir, "")
	}
	add("bin/busybox", 0o755, busybox, tar.TypeReg, "")
	for _, applet := range []string{"sh", "echo", "cat"} {
		add("bin/"+applet, 0o777, nil, tar.TypeSymlink, "busybox")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua")
	for i, written := 0, 0; written < size; i++ {
		if i%100 == 0 {
			add(fmt.Sprintf("usr/share/d%d/", i/100), 0o755, nil, tar.TypeDir, "")
		}
		var buf bytes.Buffer
		for n := 2000 + rng.IntN(60000); buf.Len() < n; {
			buf.WriteString(words[rng.IntN(len(words))])
			buf.WriteByte(" \n"[rng.IntN(2)])
		}
		add(fmt.Sprintf("usr/share/d%d/f%d.txt", i/100, i), 0o644, buf.Bytes(), tar.TypeReg, "")
		written += buf.Len()
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
}

// phaseTimes are seconds since the start of out: the wall time, and when each phase's log line
// appeared (0 when it did not).
type phaseTimes map[string]float64

// phases name log lines of out by their start; the time is that of the first such line.
var phases = []struct{ name, marker string }{
	{"first-log", ""},
	{"storage", "storage: "},
	{"base-loaded", "loaded base"},
	{"step1", "STEP 1/"},
	{"step2", "STEP 2/"},
	{"step3", "STEP 3/"},
	{"step4", "STEP 4/"},
	{"commit", "COMMIT"},
	{"built", "built in"},
	{"pushing", "pushing "},
	{"pushed", "pushed "},
}

func (p *phaseTimes) add(q phaseTimes) {
	if *p == nil {
		*p = phaseTimes{}
	}
	for k, v := range q {
		(*p)[k] += v
	}
}

func (p phaseTimes) report(b *testing.B, n int) {
	for _, ph := range append(phases, struct{ name, marker string }{"wall", ""}) {
		if v, ok := p[ph.name]; ok {
			b.ReportMetric(v/float64(n), ph.name+"-s")
		}
	}
}

// timedOut runs out as Concourse does and stamps each stderr line with the seconds since start.
func timedOut(b *testing.B, bin string, request any, dir string) (phaseTimes, string) {
	b.Helper()
	body, err := json.Marshal(request)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, dir)
	cmd.Stdin = bytes.NewReader(body)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	times := phaseTimes{}
	var log strings.Builder
	stampLines(stderr, start, times, &log) // until out closes stderr
	err = cmd.Wait()
	times["wall"] = time.Since(start).Seconds()
	if err != nil {
		b.Fatalf("out: %v\n%s", err, log.String())
	}
	var resp api.Response
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		b.Fatalf("out's response: %v\n%s", err, stdout.String())
	}
	return times, log.String()
}

// stampLines reads r line by line, writing each with its time to log and recording phases.
func stampLines(r io.Reader, start time.Time, times phaseTimes, log *strings.Builder) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t := time.Since(start).Seconds()
		line := sc.Text()
		fmt.Fprintf(log, "%6.2f %s\n", t, line)
		for _, ph := range phases {
			if _, seen := times[ph.name]; !seen && strings.HasPrefix(line, ph.marker) {
				times[ph.name] = t
			}
		}
	}
}
