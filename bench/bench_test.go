package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCountingProxy(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(r.URL.Path, "/blobs/sha256:"):
			w.Write([]byte("0123456789"))
		case r.Method == http.MethodPut:
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodPost && len(body) == 0:
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	reg := &Registry{}
	srv := httptest.NewServer(reg.count(backend))
	defer srv.Close()

	send := func(method, path, body string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send("GET", "/v2/a/blobs/sha256:1", "")
	send("GET", "/v2/a/blobs/sha256:2", "")
	send("GET", "/v2/a/manifests/missing", "")           // 404: no blob GET
	send("POST", "/v2/a/blobs/uploads/", "")             // starts an upload
	send("PUT", "/v2/a/blobs/uploads/x?digest=d", "abc") // ends it
	send("POST", "/v2/a/blobs/uploads/?digest=d", "de")  // monolithic

	got := reg.Reset()
	want := Traffic{Down: 20, Up: 5, BlobGets: 2, Uploads: 2, Requests: 6}
	if got != want {
		t.Errorf("traffic %+v, want %+v", got, want)
	}
	if again := reg.Reset(); again != (Traffic{}) {
		t.Errorf("after Reset: %+v", again)
	}
}

func TestMedian(t *testing.T) {
	puts := []Measurement{
		{Wall: 3 * time.Second, PeakMB: 10, Runs: 2, Traffic: Traffic{Down: 5}},
		{Wall: 1 * time.Second, PeakMB: 30, Runs: 0, Traffic: Traffic{Down: 1}},
		{Wall: 2 * time.Second, PeakMB: 20, Runs: 2, Traffic: Traffic{Down: 9}},
	}
	m := Median(puts)
	if m.Wall != 2*time.Second || m.PeakMB != 20 || m.Runs != 2 || m.Traffic.Down != 5 {
		t.Errorf("median %+v", m)
	}
	if m := Median(puts[:2]); m.Wall != 2*time.Second || m.PeakMB != 20 {
		t.Errorf("median of two %+v", m)
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 3400: "3.4 KB", 104_900_000: "104.9 MB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := ratio(2.1, 1.4, 0.01); got != " (×1.5)" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(4.1e3, 66.7e6, 1000); got != " (×1/16268)" {
		t.Errorf("ratio of a small figure = %q", got)
	}
	if got := ratio(106e6, 4, 1000); got != "" {
		t.Errorf("ratio against a few bytes = %q, want none", got)
	}
	if got := slug("docker-image-resource flow (dockerd)"); got != "docker-image-resource-flow-dockerd" {
		t.Errorf("slug = %q", got)
	}
}

func TestContexts(t *testing.T) {
	dir := t.TempDir()
	base := &Base{Name: "debian", Repo: "127.0.0.1:5000/bench/debian", Tag: "bookworm"}
	if err := WriteApp(dir+"/app", base, 2, 100); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(dir+"/app", dir+"/copy", false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG BASE_IMAGE=127.0.0.1:5000/bench/debian:bookworm\nFROM ${BASE_IMAGE}\n", "count=100", runMarkerCmd} {
		if !strings.Contains(readFile(t, dir+"/copy/Dockerfile"), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(readFile(t, dir+"/copy/Dockerfile"), RunMarker) {
		t.Error("the Dockerfile text holds the marker itself: echoed instructions would be counted as RUN steps")
	}
	if !strings.HasSuffix(readFile(t, dir+"/copy/src/pkg09/file299.go"), "// change 2\n") {
		t.Error("the changed source file is not changed")
	}
}

func TestPlatformsContext(t *testing.T) {
	dir := t.TempDir()
	base := &Base{Name: "busybox-platforms", Repo: "127.0.0.1:5000/bench/busybox-platforms", Tag: "1.36", Platforms: []string{"linux/amd64", "linux/arm64"}}
	if err := WritePlatforms(dir, base, 20); err != nil {
		t.Fatal(err)
	}
	dockerfile := readFile(t, dir+"/Dockerfile")
	if !strings.HasPrefix(dockerfile, "ARG BASE_IMAGE=127.0.0.1:5000/bench/busybox-platforms:1.36\nFROM ${BASE_IMAGE}\n") ||
		!strings.Contains(dockerfile, "count=20") || strings.Count(dockerfile, runMarkerCmd) != 2 || strings.Contains(dockerfile, RunMarker) {
		t.Errorf("Dockerfile:\n%s", dockerfile)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestTableColumns(t *testing.T) {
	put := Measurement{Wall: 2 * time.Second, PeakMB: 50, Mirror: 24_500_000, Traffic: Traffic{Down: 5000, Up: 9000}}
	for _, mirror := range []bool{false, true} {
		var b strings.Builder
		writeTable(&b, Table{ID: "S5", Base: "debian", Ours: "ours (cache mounts)", Mirror: mirror, Rows: []Row{
			{Peer: "ours (cache mounts)", Puts: []Measurement{put}},
			{Peer: "ours", Puts: []Measurement{put, put}, Errors: []string{"put 3: boom"}},
			{Peer: "BuildKit (buildctl)", Errors: []string{"put 1: a | b"}},
		}}, "ours")
		want := -1
		for _, line := range strings.Split(b.String(), "\n") {
			if !strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "|---") {
				continue
			}
			cells := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
			if want == -1 {
				want = cells
			}
			if cells != want {
				t.Errorf("mirror %v: %d cells, want %d: %q", mirror, cells-1, want-1, line)
			}
		}
		if !strings.Contains(b.String(), "| ours | 2.0 (×1) |") {
			t.Errorf("mirror %v: the ours row is not divided by ours (cache mounts):\n%s", mirror, b.String())
		}
	}
}
