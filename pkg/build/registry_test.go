package build

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesmith/buildah-image-resource/pkg/access"
	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// startRegistry runs a plain-HTTP docker-registry on a free local port and
// returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin := testharness.RequireCommand(t, "docker-registry", "docker-registry")
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

	res, out := build(t, "pull", Options{
		BuildArgs: map[string]string{"REGISTRY": host},
		Access: policy(t, api.Source{Repository: "elsewhere.example/app", InsecureRegistries: []string{host},
			PrivateRegs: []api.Private{{Registry: host, Username: "user", Password: "secret-password"}}}),
	})
	if got := imageFiles(t, res.Image)["/pulled.txt"]; got != "pulled\n" {
		t.Errorf("/pulled.txt = %q", got)
	}
	if strings.Contains(out, "secret-password") {
		t.Error("the output shows the registry password")
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

// TestBuildOnPulledImageKeepsItsLayers builds FROM a pulled image: the result lists the pulled
// layer as the registry stores it (same digest), names the pulled image as its source, so that a
// push to another repository of that registry mounts it and uploads only the new layer and the
// config; a push to a registry lacking it uploads the registry's original bytes.
func TestBuildOnPulledImageKeepsItsLayers(t *testing.T) {
	bb := busybox(t)
	host := startRegistry(t)
	base, err := name.ParseReference(host+"/library/busybox:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(base, bb.image); err != nil {
		t.Fatal(err)
	}
	res, _ := build(t, "pull", Options{
		BuildArgs: map[string]string{"REGISTRY": host},
		Access:    policy(t, api.Source{Repository: "elsewhere.example/app", InsecureRegistries: []string{host}}),
	})

	baseLayers, err := bb.image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(baseLayers)+1 {
		t.Fatalf("result has %d layers, want %d", len(layers), len(baseLayers)+1)
	}
	for i, l := range baseLayers {
		want, _ := l.Digest()
		if got, _ := layers[i].Digest(); got != want {
			t.Errorf("layer %d has digest %s, the pulled image's is %s", i, got, want)
		}
		if src, wantSrc := res.LayerSources[want], host+"/library/busybox@"+bb.digest; src != wantSrc {
			t.Errorf("source of layer %s = %q, want %q", want, src, wantSrc)
		}
	}

	// Another repository of the same registry: the pulled layer is mounted.
	app, err := name.ParseReference(host+"/team/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	counter := &uploadCounter{}
	if err := remote.Write(app, mountFrom(t, res), remote.WithTransport(counter)); err != nil {
		t.Fatalf("pushing the result: %v", err)
	}
	if got := counter.n.Load(); got != 2 {
		t.Errorf("push uploaded %d blobs, want 2 (the RUN layer and the config)", got)
	}

	// Another registry: every blob is uploaded, the pulled layer fetched from the first one.
	other := startRegistry(t)
	copied, err := name.ParseReference(other+"/team/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(copied, res.Image); err != nil {
		t.Fatalf("pushing the result to another registry: %v", err)
	}
	pushed, err := remote.Image(copied)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := res.Image.Digest()
	if got, _ := pushed.Digest(); got != want {
		t.Errorf("the other registry has %s, pushed %s", got, want)
	}
	if got := imageFiles(t, pushed)["/pulled.txt"]; got != "pulled\n" {
		t.Errorf("/pulled.txt in the other registry = %q", got)
	}
}

// mountFrom is res.Image with the layers of res.LayerSources mountable from their sources.
func mountFrom(t *testing.T, res *Result) v1.Image {
	t.Helper()
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Layer
	for _, l := range layers {
		d, _ := l.Digest()
		if src, ok := res.LayerSources[d]; ok {
			ref, err := name.ParseReference(src, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			l = &remote.MountableLayer{Layer: l, Reference: ref}
		}
		out = append(out, l)
	}
	return mountedImage{Image: res.Image, layers: out}
}

type mountedImage struct {
	v1.Image
	layers []v1.Layer
}

func (m mountedImage) Layers() ([]v1.Layer, error) { return m.layers, nil }

// policy is the access policy of a source, for a build's pulls.
func policy(t *testing.T, src api.Source) *access.Policy {
	t.Helper()
	p, err := access.New(context.Background(), src, access.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
