// Command getbench runs G1 (issue 19): the get of a multi-layer image, this resource's in beside
// crane, skopeo and registry-image-resource's in, each on a cold local state, on loopback and on
// a shaped link (bench/shaping.go), and writes a Markdown section with the medians and the time
// the link allows. Build crane and registry-image-resource's in outside this module and pass
// their paths; a getter whose binary is not given is left out.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/bench"
)

func main() {
	bin := flag.String("bin", "", "directory holding this resource's in (required)")
	crane := flag.String("crane", "", "crane binary (go-containerregistry's cmd/crane)")
	rir := flag.String("rir-in", "", "registry-image-resource's in binary")
	skopeo := flag.Bool("skopeo", true, "run skopeo (Debian's package) too")
	reps := flag.Int("reps", 3, "repetitions of every get (medians)")
	layers := flag.Int("layers", 9, "data layers on top of busybox")
	layerMB := flag.Float64("layer-mb", 17.4, "MB of random data per layer")
	delay := flag.Duration("shape-delay", bench.DefaultShapeDelay, "delay the shaped link adds to every request")
	rate := flag.Float64("shape-rate", bench.DefaultShapeRate/1e6, "MB/s of every stream on the shaped link")
	loopback := flag.Bool("loopback", true, "also run every get on loopback")
	out := flag.String("out", "", "Markdown file to write (default: stdout)")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "getbench: -bin is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{bin: *bin, crane: *crane, rir: *rir, skopeo: *skopeo, reps: *reps, layers: *layers,
		layerBytes: int64(*layerMB * 1e6), shape: bench.Shape{Delay: *delay, Rate: *rate * 1e6}, loopback: *loopback}
	text, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "getbench: %v\n", err)
		os.Exit(1)
	}
	if *out == "" {
		fmt.Print(text)
		return
	}
	if err := os.WriteFile(*out, []byte(text), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "getbench: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	bin, crane, rir  string
	reps, layers     int
	layerBytes       int64
	shape            bench.Shape
	loopback, skopeo bool
}

// link is one registry (loopback or shaped) holding the image, and the results on it.
type link struct {
	shape   bench.Shape
	reg     *bench.Registry
	ref     string
	results []bench.GetResult
}

func run(ctx context.Context, cfg config) (string, error) {
	started := time.Now()
	load := loadAverage()
	work, err := os.MkdirTemp("", "getbench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	img, err := bench.MultiLayerBase(cfg.layers, cfg.layerBytes)
	if err != nil {
		return "", err
	}
	shapes := []bench.Shape{cfg.shape}
	if cfg.loopback {
		shapes = append([]bench.Shape{{}}, shapes...)
	}
	getters := chooseGetters(cfg)
	logFile, err := os.Create(filepath.Join(os.TempDir(), "getbench-"+started.Format("20060102-150405")+".log"))
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	var links []*link
	var digest v1.Hash
	var sizes []int64
	for i, shape := range shapes {
		dir := filepath.Join(work, fmt.Sprintf("registry-%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		shape.Streams = &bench.StreamGauge{}
		if shape.On() {
			shape.Trace = logFile
		}
		reg, err := bench.StartShapedRegistry(dir, shape)
		if err != nil {
			return "", err
		}
		defer reg.Close()
		l := &link{shape: shape, reg: reg, ref: reg.Host + "/bench/multilayer:g1"}
		if digest, sizes, err = bench.PushImage(ctx, l.ref, img); err != nil {
			return "", err
		}
		for _, g := range getters {
			l.results = append(l.results, bench.GetResult{Getter: g})
		}
		links = append(links, l)
	}
	for rep := 0; rep < cfg.reps; rep++ {
		for _, l := range links {
			for i := range l.results {
				measure(ctx, l, &l.results[i], digest, work, logFile)
				if ctx.Err() != nil {
					return "", ctx.Err()
				}
			}
		}
	}
	return report(cfg, links, digest, sizes, started, load, loadAverage()), nil
}

// chooseGetters are ours (format oci and oci-layout, 4 streams; with rootfs; 1 and 8 streams,
// showing where time goes), crane, skopeo and registry-image-resource, those whose binaries
// were given.
func chooseGetters(cfg config) []bench.Getter {
	getters := []bench.Getter{bench.OursGetter(cfg.bin, "oci", 4, false), bench.OursGetter(cfg.bin, "oci-layout", 4, false),
		bench.OursGetter(cfg.bin, "oci", 4, true)}
	if cfg.crane != "" {
		getters = append(getters, bench.CraneGetter(cfg.crane))
	}
	if cfg.skopeo {
		getters = append(getters, bench.SkopeoGetter())
	}
	if cfg.rir != "" {
		getters = append(getters, bench.RegistryImageResourceGetter(cfg.rir))
	}
	return append(getters, bench.OursGetter(cfg.bin, "oci", 1, false), bench.OursGetter(cfg.bin, "oci", 8, false),
		bench.OursGetter(cfg.bin, "oci-layout", 8, false))
}

// measure runs one get and records it; a failure is recorded, not fatal.
func measure(ctx context.Context, l *link, r *bench.GetResult, digest v1.Hash, work string, log io.Writer) {
	fmt.Fprintf(log, "== %s on %s\n", r.Getter.Name, l.shape)
	l.shape.Streams.Reset()
	seconds, traffic, err := bench.RunGet(ctx, l.reg, r.Getter, l.ref, "g1", digest, work, log)
	peak := l.shape.Streams.Reset()
	fmt.Fprintf(os.Stderr, "getbench: %-60s %-40s %6.2f s, %d streams at most %v\n", r.Getter.Name, l.shape, seconds, peak, err)
	if err != nil {
		r.Err = err.Error()
		return
	}
	r.Seconds = append(r.Seconds, seconds)
	r.PeakStreams = max(r.PeakStreams, peak)
	r.Traffic = traffic
}

// report writes the G1 section: the image, the link, one table per link.
func report(cfg config, links []*link, digest v1.Hash, sizes []int64, started time.Time, loadStart, loadEnd string) string {
	var b strings.Builder
	var total int64
	for _, s := range sizes {
		total += s
	}
	fmt.Fprintf(&b, "G1 run %s, %d repetitions (medians), load average %s at the start, %s at the end.\n\n",
		started.UTC().Format("2006-01-02 15:04 UTC"), cfg.reps, loadStart, loadEnd)
	fmt.Fprintf(&b, "Image: busybox plus %d layers of %.1f MB of random data: %d layers, %.1f MB compressed (%s).\n\n",
		cfg.layers, float64(cfg.layerBytes)/1e6, len(sizes), float64(total)/1e6, digest)
	for _, l := range links {
		fmt.Fprintf(&b, "On %s:\n\n", l.shape)
		b.WriteString("| get | streams (nominal / seen) | wall s (median) | runs | MB down | requests | blob GETs | link allows s (ideal / whole blobs) | × ideal |\n")
		b.WriteString("|---|---|---:|---|---:|---:|---:|---:|---:|\n")
		for _, r := range l.results {
			writeRow(&b, l.shape, r, sizes)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// writeRow writes one getter's row; the link time is for its streams, after 2 sequential
// requests (ping, manifest).
func writeRow(b *strings.Builder, shape bench.Shape, r bench.GetResult, sizes []int64) {
	runs := make([]string, len(r.Seconds))
	for i, s := range r.Seconds {
		runs[i] = fmt.Sprintf("%.2f", s)
	}
	if r.Err != "" {
		runs = append(runs, "failed: "+firstLine(r.Err))
	}
	allows, ratio := "-", "-"
	if ideal, schedule := bench.LinkTime(shape, sizes, r.Getter.Streams, 2); ideal > 0 {
		allows = fmt.Sprintf("%.2f / %.2f", ideal, schedule)
		if r.Median() > 0 {
			ratio = fmt.Sprintf("%.2f", r.Median()/ideal)
		}
	}
	fmt.Fprintf(b, "| %s | %d / %d | %.2f | %s | %.1f | %d | %d | %s | %s |\n", r.Getter.Name, r.Getter.Streams, r.PeakStreams, r.Median(),
		strings.Join(runs, ", "), float64(r.Traffic.Down)/1e6, r.Traffic.Requests, r.Traffic.BlobGets, allows, ratio)
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
