package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// MultiLayerBase is the image of the get benchmark (G1, issue 19): the busybox base plus layers
// data layers, layer i holding /data/layer-<i>.bin of layerBytes pseudo-random bytes from a seed
// derived from i (the same image on every run; the data does not compress).
func MultiLayerBase(layers int, layerBytes int64) (v1.Image, error) {
	img, err := testharness.Busybox(runtime.GOARCH)
	if err != nil {
		return nil, fmt.Errorf("making the busybox base: %w", err)
	}
	for i := 1; i <= layers; i++ {
		layer, err := randomLayer(i, layerBytes)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, fmt.Errorf("adding data layer %d: %w", i, err)
		}
	}
	return img, nil
}

// randomLayer is a gzip'd tar of data/layer-<i>.bin holding size bytes of ChaCha8 output seeded
// with i, compressed at BestSpeed (random data does not shrink; this only keeps it quick).
func randomLayer(i int, size int64) (v1.Layer, error) {
	var seed [32]byte
	seed[0], seed[1] = byte(i), byte(i>>8)
	data := make([]byte, size)
	if _, err := rand.NewChaCha8(seed).Read(data); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	mod := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "data/", Mode: 0o755, ModTime: mod}); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("data/layer-%d.bin", i)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mod}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
}

// PushImage pushes img to ref (plain HTTP) and returns its digest and its layers' sizes.
func PushImage(ctx context.Context, ref string, img v1.Image) (v1.Hash, []int64, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, nil, err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return v1.Hash{}, nil, fmt.Errorf("pushing %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	manifest, err := img.Manifest()
	if err != nil {
		return v1.Hash{}, nil, err
	}
	var sizes []int64
	for _, l := range manifest.Layers {
		sizes = append(sizes, l.Size)
	}
	return digest, sizes, nil
}

// Getter is one way of downloading an image from the registry into a fresh directory (G1).
type Getter struct {
	Name    string
	Streams int // layer downloads at once: the link time's divisor
	// Command is the command that downloads ref (digest: its manifest digest) into dir, and
	// the stdin it reads (nil: none).
	Command func(ref, tag string, digest v1.Hash, dir string) (*exec.Cmd, []byte)
}

// OursGetter is this resource's in: format (oci: image.tar; oci-layout: oci/, like crane's output),
// plus rootfs/ and rootfs.tar with rootfs, max_concurrent_downloads jobs.
func OursGetter(bin, format string, jobs int, rootfs bool) Getter {
	what := "format " + format
	params := map[string]any{"format": format}
	if rootfs {
		what += " + rootfs"
		params["rootfs"] = true
	}
	label := fmt.Sprintf("ours: in, %s, max_concurrent_downloads %d", what, jobs)
	return Getter{Name: label, Streams: jobs, Command: func(ref, tag string, digest v1.Hash, dir string) (*exec.Cmd, []byte) {
		repo := ref[:len(ref)-len(tag)-1]
		return resourceIn(filepath.Join(bin, "in"), dir, map[string]any{"repository": repo, "tag": tag,
			"insecure": true, "max_concurrent_downloads": jobs}, digest, tag, params)
	}}
}

// RegistryImageResourceGetter is concourse/registry-image-resource's in (format oci), built by
// the caller outside this module.
func RegistryImageResourceGetter(in string) Getter {
	return Getter{Name: "registry-image-resource: in, format oci", Streams: 1,
		Command: func(ref, tag string, digest v1.Hash, dir string) (*exec.Cmd, []byte) {
			repo := ref[:len(ref)-len(tag)-1]
			return resourceIn(in, dir, map[string]any{"repository": repo, "tag": tag, "insecure": true},
				digest, tag, map[string]any{"format": "oci"})
		}}
}

// resourceIn is a Concourse get: the in binary, dir as its argument, the request on stdin.
func resourceIn(in, dir string, source map[string]any, digest v1.Hash, tag string, params map[string]any) (*exec.Cmd, []byte) {
	request, _ := json.Marshal(map[string]any{"source": source, "params": params,
		"version": map[string]string{"digest": digest.String(), "tag": tag}})
	cmd := exec.Command(in, dir)
	cmd.Env = append(os.Environ(), ConcourseEnv...)
	return cmd, request
}

// CraneGetter is `crane pull --format oci` (go-containerregistry, 4 layers at once by default).
func CraneGetter(crane string) Getter {
	return Getter{Name: "crane pull --format oci", Streams: 4,
		Command: func(ref, _ string, _ v1.Hash, dir string) (*exec.Cmd, []byte) {
			return exec.Command(crane, "pull", "--insecure", "--format", "oci", ref, filepath.Join(dir, "oci")), nil
		}}
}

// SkopeoGetter is `skopeo copy docker://ref oci-archive:...` (containers/image, 6 layers at once).
func SkopeoGetter() Getter {
	return Getter{Name: "skopeo copy to oci-archive", Streams: 6,
		Command: func(ref, _ string, _ v1.Hash, dir string) (*exec.Cmd, []byte) {
			return exec.Command("skopeo", "--insecure-policy", "--tmpdir", dir, "copy", "--quiet",
				"--src-tls-verify=false", "docker://"+ref, "oci-archive:"+filepath.Join(dir, "image.tar")), nil
		}}
}

// GetResult is one getter's downloads of G1 on one link.
type GetResult struct {
	Getter  Getter
	Seconds []float64
	Traffic Traffic // of the last repetition
	// PeakStreams is the most blob downloads in flight at once the link saw in any repetition.
	PeakStreams int
	Err         string
}

// Median is the median of the wall times (0 without any).
func (g GetResult) Median() float64 {
	if len(g.Seconds) == 0 {
		return 0
	}
	s := slices.Clone(g.Seconds)
	slices.Sort(s)
	return s[len(s)/2]
}

// RunGet runs getter once into a new directory under work on a cold local state and returns
// its wall time and the registry traffic it caused; its output goes to log.
func RunGet(ctx context.Context, reg *Registry, getter Getter, ref, tag string, digest v1.Hash, work string, log io.Writer) (float64, Traffic, error) {
	dir, err := os.MkdirTemp(work, "get-")
	if err != nil {
		return 0, Traffic{}, err
	}
	defer os.RemoveAll(dir)
	cmd, stdin := getter.Command(ref, tag, digest, dir)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stamped := &stampWriter{w: log}
	cmd.Stdout, cmd.Stderr = stamped, stamped
	reg.Reset()
	start := time.Now()
	fmt.Fprintf(log, "start %s\n", start.Format(stampLayout))
	err = cmd.Run()
	seconds := time.Since(start).Seconds()
	fmt.Fprintf(log, "end %s\n", time.Now().Format(stampLayout))
	traffic := reg.Reset()
	if err != nil {
		return seconds, traffic, fmt.Errorf("%s: %w", getter.Name, err)
	}
	return seconds, traffic, ctx.Err()
}

// stampLayout is the wall clock of the log's lines (as the link's trace writes it).
const stampLayout = "15:04:05.000"

// stampWriter prefixes every line a command writes with the time it was written (where the
// time goes between the last byte on the link and the command's end).
type stampWriter struct {
	w       io.Writer
	midLine bool
}

// Write writes p, starting each new line with the time.
func (s *stampWriter) Write(p []byte) (int, error) {
	var buf bytes.Buffer
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !s.midLine {
			buf.WriteString("out " + time.Now().Format(stampLayout) + " ")
		}
		buf.Write(line)
		s.midLine = line[len(line)-1] != '\n'
	}
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// LinkTime is the time the link allows for downloading blobs (config and layers) of the given
// sizes with streams downloads at once, after `before` sequential requests (ping, manifest):
// total/(rate × min(streams, layers)) + delay × round trips, the round trips being before plus
// one per wave of streams blobs. Schedule is the same bound when a blob cannot be split between
// streams: the longest stream of a greedy assignment of the blobs, largest first, to streams.
func LinkTime(shape Shape, sizes []int64, streams, before int) (ideal, schedule float64) {
	if shape.Rate <= 0 || len(sizes) == 0 {
		return 0, 0
	}
	streams = max(1, min(streams, len(sizes)))
	var total int64
	for _, s := range sizes {
		total += s
	}
	waves := (len(sizes) + streams - 1) / streams
	latency := shape.Delay.Seconds() * float64(before+waves)
	ideal = float64(total)/(shape.Rate*float64(streams)) + latency

	sorted := slices.Clone(sizes)
	slices.Sort(sorted)
	slices.Reverse(sorted)
	load := make([]int64, streams)
	for _, s := range sorted {
		i := slices.Index(load, slices.Min(load))
		load[i] += s
	}
	return ideal, float64(slices.Max(load))/shape.Rate + latency
}
