package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// BenchmarkOutCachedRebuild builds an image on a ~50 MB base (from a get) with a RUN writing
// ~100 MB, with cache: true, on an empty registry (cold), then rebuilds it unchanged with a fresh
// storage, as a fresh worker would (cached). For both it reports the wall seconds of out, the
// bytes the registry served (manifests and blobs) and received (blob uploads), and the RUN steps
// buildah executed.
func BenchmarkOutCachedRebuild(b *testing.B) {
	reg := testharness.StartInProcess(b)
	work := b.TempDir()
	baseDir := filepath.Join(work, "base")
	testharness.SaveOCIArchive(b, testharness.MultiLayerImage(b, 1, 50<<20), filepath.Join(mkdir(b, baseDir), "image.tar"), "")
	writeFile(b, filepath.Join(baseDir, "repository"), reg.Host+"/library/base")
	writeFile(b, filepath.Join(baseDir, "tag"), "1")
	writeFile(b, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/base:1")+"\n"+
		"COPY deps.txt /deps.txt\nRUN head -c 104857600 /dev/urandom > /big.bin\nCOPY src/ /app/\nCMD [\"ls\", \"/app\"]\n")
	writeFile(b, filepath.Join(work, "ctx/deps.txt"), "deps")
	writeFile(b, filepath.Join(work, "ctx/src/main.txt"), "main")

	testharness.Binaries(b) // compiled before the clock starts
	b.ResetTimer()
	var cold, cached runFigures
	for i := 0; i < b.N; i++ {
		src := source(reg, fmt.Sprintf("app%d", i))
		params := map[string]any{"build": "ctx", "load_base": "base", "cache": true}
		cold.add(measureOut(b, reg, work, src, params))
		cached.add(measureOut(b, reg, work, src, params))
	}
	cold.report(b, "cold", b.N)
	cached.report(b, "cached", b.N)
}

// runFigures are what one or more out runs cost.
type runFigures struct {
	seconds        float64
	pulled, pushed int64
	runSteps       int
}

func (f *runFigures) add(g runFigures) {
	f.seconds += g.seconds
	f.pulled += g.pulled
	f.pushed += g.pushed
	f.runSteps += g.runSteps
}

func (f runFigures) report(b *testing.B, name string, n int) {
	b.ReportMetric(f.seconds/float64(n), name+"-s")
	b.ReportMetric(float64(f.pulled)/float64(n), name+"-pulled-B")
	b.ReportMetric(float64(f.pushed)/float64(n), name+"-pushed-B")
	b.ReportMetric(float64(f.runSteps)/float64(n), name+"-RUN-steps")
}

// measureOut runs out once and measures it.
func measureOut(b *testing.B, reg *testharness.Registry, work string, src, params map[string]any) runFigures {
	b.Helper()
	reg.ResetRequests()
	start := time.Now()
	res := testharness.Run(b, "out", map[string]any{"source": src, "params": params}, work)
	elapsed := time.Since(start).Seconds()
	var resp api.Response
	res.JSON(b, &resp)
	_, pushed := reg.BlobUploads()
	return runFigures{seconds: elapsed, pulled: servedBytes(reg), pushed: pushed, runSteps: executedRunSteps(res.Stderr)}
}

// servedBytes counts the body bytes of every successful GET the registry answered.
func servedBytes(reg *testharness.Registry) int64 {
	var n int64
	for _, r := range reg.Requests() {
		if r.Method == http.MethodGet && r.Status == http.StatusOK {
			n += r.BytesOut
		}
	}
	return n
}

// buildahStep matches the header buildah prints when it starts a step (not the cache report,
// which has " — ", nor the repeated header with the duration).
var buildahStep = regexp.MustCompile(`^(\[\d+/\d+\] )?STEP \d+/\d+: (\S+)`)
var stepDuration = regexp.MustCompile(` \([0-9.]+s\)$`)

// executedRunSteps counts the RUN steps buildah started and did not take from its cache.
func executedRunSteps(stderr string) int {
	lines := strings.Split(stderr, "\n")
	n := 0
	for i, line := range lines {
		m := buildahStep.FindStringSubmatch(line)
		if m == nil || m[2] != "RUN" || strings.Contains(line, " — ") || stepDuration.MatchString(line) {
			continue
		}
		cached := false
		for _, next := range lines[i+1:] {
			if buildahStep.MatchString(next) {
				break
			}
			if strings.HasPrefix(next, "--> Using cache") {
				cached = true
			}
		}
		if !cached {
			n++
		}
	}
	return n
}
