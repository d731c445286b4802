package build

import (
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// BenchmarkLoadBase loads a base with a ~100 MB incompressible layer from
// an OCI archive and from an OCI layout into a fresh store (storage driver
// as probed).
func BenchmarkLoadBase(b *testing.B) {
	blob := make([]byte, 100<<20)
	rng := rand.NewChaCha8([32]byte{1})
	if _, err := io.ReadFull(rng, blob); err != nil {
		b.Fatal(err)
	}
	img := busyboxImage(b, file{name: "data/random.bin", data: blob, mode: 0o644})
	dir := b.TempDir()
	archive := filepath.Join(dir, "base.tar")
	saved := saveOCIArchive(b, archive, filepath.Join(dir, "layout"), img)
	names := []string{"docker.io/library/big:latest"}
	b.Run("oci-archive", func(b *testing.B) {
		benchmarkLoad(b, Base{Names: names, Transport: "oci-archive", Path: archive, Image: saved})
	})
	b.Run("oci", func(b *testing.B) {
		benchmarkLoad(b, Base{Names: names, Transport: "oci", Path: filepath.Join(dir, "layout"), Image: saved})
	})
}

func benchmarkLoad(b *testing.B, base Base) {
	log := logrus.New()
	log.SetOutput(io.Discard)

	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		work := b.TempDir()
		store, err := openStore(work, "", log)
		if err != nil {
			b.Fatal(err)
		}
		env, err := newEnvironment(work, Options{Log: log, Model: model(b, "FROM big\n")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := loadBase(context.Background(), store, env.sys, base, log); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		if _, err := store.Shutdown(true); err != nil {
			b.Fatal(err)
		}
		if err := removeAll(work); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/load")
}

// BenchmarkBuildBusybox builds testdata/build/single (COPY, RUN, ENV,
// ENTRYPOINT on a loaded busybox base) in a fresh work directory: loading
// the base, building and compressing the new layers, then Close.
func BenchmarkBuildBusybox(b *testing.B) {
	img := busyboxImage(b)
	dir := b.TempDir()
	archive := filepath.Join(dir, "busybox.tar")
	saved := saveOCIArchive(b, archive, filepath.Join(dir, "layout"), img)
	contextDir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "build", "single"))
	if err != nil {
		b.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	for _, driver := range []string{"overlay", "vfs"} {
		b.Run(driver, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res, err := Build(context.Background(), parsed(b, Options{
					ContextDir: contextDir, Dockerfile: filepath.Join(contextDir, "Dockerfile"),
					WorkDir: b.TempDir(), StorageDriver: driver, Log: log, Stderr: io.Discard,
					Bases: []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: archive, Image: saved}},
				}))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := res.Image.Digest(); err != nil {
					b.Fatal(err)
				}
				if err := res.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
