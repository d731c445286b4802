package build

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// startRegistry runs a plain-HTTP docker-registry on a free local port and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			return host
		}
	}
	t.Fatal("docker-registry did not start")
	return ""
}

// uploadCounter counts blob uploads (the PUT that completes one).
type uploadCounter struct{ n atomic.Int32 }

func (c *uploadCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
		c.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestBuildPullsUncoveredImageAndPushesOnlyNewLayers builds FROM an image no
// base covers (pulled from an insecure registry), then checks that pushing a
// build on a loaded base uploads only the new layers and the config.
func TestBuildPullsUncoveredImageAndPushesOnlyNewLayers(t *testing.T) {
	bb := busybox(t)
	host := startRegistry(t)
	ref, err := name.ParseReference(host+"/library/busybox:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, bb.image); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var asked []string
	res, out := build(t, "pull", Options{
		BuildArgs: map[string]string{"REGISTRY": host},
		Insecure:  func(h string) bool { return h == host },
		Auth: func(h string) (string, string) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, h)
			return "user", "secret-password"
		},
	})
	if got := imageFiles(t, res.Image)["/pulled.txt"]; got != "pulled\n" {
		t.Errorf("/pulled.txt = %q", got)
	}
	if strings.Contains(out, "secret-password") {
		t.Error("the output shows the registry password")
	}
	if len(asked) != 1 || asked[0] != host {
		t.Errorf("Auth was asked for %v, want [%s]", asked, host)
	}
	if res.BaseDigests[host+"/library/busybox:1"] != bb.digest {
		t.Errorf("base digests = %v", res.BaseDigests)
	}

	// A build on the loaded base, pushed where the base already is.
	built, _ := build(t, "single", Options{
		Bases: []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}},
	})
	app, err := name.ParseReference(host+"/team/app:base", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(app, bb.image); err != nil {
		t.Fatal(err)
	}
	counter := &uploadCounter{}
	if err := remote.Write(app.Context().Tag("built"), built.Image, remote.WithTransport(counter)); err != nil {
		t.Fatalf("pushing the result: %v", err)
	}
	layers, err := built.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	baseLayers, err := bb.image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if want := int32(len(layers) - len(baseLayers) + 1); counter.n.Load() != want {
		t.Errorf("push uploaded %d blobs, want %d (new layers + config)", counter.n.Load(), want)
	}
	pulled, err := remote.Image(app.Context().Tag("built"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := built.Image.Digest()
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("registry has %s, pushed %s", got, want)
	}
}
