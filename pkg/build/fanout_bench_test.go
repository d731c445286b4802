package build

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
)

// debianRootfs is the Debian bookworm minbase rootfs tar that bench/ caches.
const debianRootfs = "/var/cache/buildah-image-resource-bench/debian-bookworm-minbase.tar"

// BenchmarkBuildFanOut is the in-process part of the benchmark report's S4 put, for profiling
// (-cpuprofile): on a fresh work directory, load the Debian minbase base from an OCI archive,
// build LABEL + COPY + RUN on it, and compute the result's manifest (compressing the new
// layers), then Close. It reports the seconds of each of those phases (build-s includes load-s).
func BenchmarkBuildFanOut(b *testing.B) {
	if _, err := os.Stat(debianRootfs); err != nil {
		b.Skipf("the Debian rootfs bench/ caches is absent: %v", err)
	}
	layer, err := tarball.LayerFromFile(debianRootfs, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	archive := filepath.Join(dir, "debian.tar")
	saved := saveOCIArchive(b, archive, filepath.Join(dir, "layout"), imageWithLayers(b, layer))
	contextDir := filepath.Join(dir, "ctx")
	writeTestFile(b, filepath.Join(contextDir, "Dockerfile"), "FROM debian:bookworm\nLABEL org.example.fanout=1\nCOPY app.txt /app.txt\nRUN echo built > /built.txt\n")
	writeTestFile(b, filepath.Join(contextDir, "app.txt"), "app")
	var logged bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logged)

	var load float64
	var build, manifest, closing time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := Build(context.Background(), parsed(b, Options{
			ContextDir: contextDir, Dockerfile: filepath.Join(contextDir, "Dockerfile"),
			WorkDir: b.TempDir(), Log: log, Stderr: io.Discard,
			Bases: []Base{{Names: []string{"docker.io/library/debian:bookworm"}, Transport: "oci-archive", Path: archive, Image: saved}},
		}))
		if err != nil {
			b.Fatal(err)
		}
		built := time.Now()
		if _, err := res.Image.Digest(); err != nil {
			b.Fatal(err)
		}
		computed := time.Now()
		if err := res.Close(); err != nil {
			b.Fatal(err)
		}
		build, manifest, closing = build+built.Sub(start), manifest+computed.Sub(built), closing+time.Since(computed)
		m := regexp.MustCompile(`loaded base \S+ in ([0-9.]+)s`).FindStringSubmatch(logged.String())
		if m == nil {
			b.Fatalf("no load time in the log:\n%s", logged.String())
		}
		seconds, _ := strconv.ParseFloat(m[1], 64)
		load += seconds
		logged.Reset()
	}
	n := float64(b.N)
	b.ReportMetric(load/n, "load-s")
	b.ReportMetric(build.Seconds()/n, "build-s")
	b.ReportMetric(manifest.Seconds()/n, "manifest-s")
	b.ReportMetric(closing.Seconds()/n, "close-s")
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
