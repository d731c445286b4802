package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// BenchmarkIn200MB gets a 200 MB image (four 50 MB layers) as image.tar and reports the peak RSS
// of the in process: layers are streamed, so it must not grow with the image.
func BenchmarkIn200MB(b *testing.B) {
	reg := testharness.StartInProcess(b)
	digest := reg.Push(b, reg.Ref("big:1"), testharness.MultiLayerImage(b, 4, 50<<20))
	request := map[string]any{"source": source(reg, "big", "tag", "1"), "version": api.Version{Digest: digest.String(), Tag: "1"}}
	b.ResetTimer()
	var peak int64
	for i := 0; i < b.N; i++ {
		_, rss := runMeasured(b, "in", request, b.TempDir(), nil)
		peak = max(peak, rss)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
}

// BenchmarkOutLoadBase100MB builds a small Dockerfile on a saved 100 MB base into a registry that
// holds the base in another repository, and reports the load, build and push seconds, the bytes
// uploaded and the peak RSS of out.
func BenchmarkOutLoadBase100MB(b *testing.B) {
	reg := testharness.StartInProcess(b)
	base := testharness.MultiLayerImage(b, 2, 50<<20)
	digest := reg.Push(b, reg.Ref("library/base:1"), base)
	work := b.TempDir()
	res := testharness.Run(b, "in", map[string]any{"source": source(reg, "library/base", "tag", "1"), "version": api.Version{Digest: digest.String(), Tag: "1"}}, mkdir(b, filepath.Join(work, "base")))
	if res.ExitCode != 0 {
		b.Fatal(res.Stderr)
	}
	writeFile(b, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/base:1")+"\nRUN echo built > /built.txt\nCOPY app.txt /app.txt\n")
	writeFile(b, filepath.Join(work, "ctx/app.txt"), "app")
	b.ResetTimer()
	var peak int64
	var load, build, push float64
	var uploaded int64
	for i := 0; i < b.N; i++ {
		reg.ResetRequests()
		request := map[string]any{"source": source(reg, "app"+strconv.Itoa(i)), "params": map[string]any{"build": "ctx", "load_base": "base"}}
		stderr, rss := runMeasured(b, "out", request, work, nil)
		peak = max(peak, rss)
		load += seconds(b, stderr, `loaded base \S+ in ([0-9.]+)s`)
		build += seconds(b, stderr, `built in ([0-9.]+)s`)
		push += seconds(b, stderr, `pushed \S+ in ([0-9.]+)s`)
		_, n := reg.BlobUploads()
		uploaded += n
	}
	n := float64(b.N)
	b.ReportMetric(load/n, "load-base-s")
	b.ReportMetric(build/n, "build-s")
	b.ReportMetric(push/n, "push-s")
	b.ReportMetric(float64(uploaded)/n, "uploaded-B")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
}

// runMeasured runs a binary and returns its stderr and its peak RSS in bytes, as GNU time reports
// it. (The rusage of a child of this process would count this process's memory: at exec the
// kernel keeps the high-water mark of the address space the child was forked from.)
func runMeasured(b *testing.B, bin string, request any, dir string, env []string) (string, int64) {
	b.Helper()
	testharness.RequireFile(b, "/usr/bin/time", "time") // GNU time measures the peak RSS
	body, err := json.Marshal(request)
	if err != nil {
		b.Fatal(err)
	}
	rssFile := filepath.Join(b.TempDir(), "maxrss")
	cmd := exec.Command("/usr/bin/time", "-f", "%M", "-o", rssFile, filepath.Join(testharness.Binaries(b), bin), dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(body), &stdout, &stderr
	cmd.Env = env
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(readFile(b, rssFile)), 10, 64)
	if err != nil {
		b.Fatalf("GNU time's output: %v", err)
	}
	return stderr.String(), kb * 1024
}

func seconds(b *testing.B, log, pattern string) float64 {
	m := regexp.MustCompile(pattern).FindStringSubmatch(log)
	if m == nil {
		b.Fatalf("log lacks %q:\n%s", pattern, log)
	}
	s, _ := strconv.ParseFloat(m[1], 64)
	return s
}
