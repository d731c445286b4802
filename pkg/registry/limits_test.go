package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/access"
	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

const someDigest = "sha256:0123456789012345678901234567890123456789012345678901234567890123"

func quietLog() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// newInsecure is a client for a plain HTTP repository with no credentials.
func newInsecure(repository string) (*Client, error) {
	policy, err := access.New(context.Background(), api.Source{Repository: repository, Insecure: true}, access.Options{})
	if err != nil {
		return nil, err
	}
	return New(context.Background(), policy, repository, quietLog())
}

func client(t *testing.T, host string) *Client {
	t.Helper()
	c, err := newInsecure(host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// manifestServer answers /v2/ and serves every manifest GET with manifest.
func manifestServer(t *testing.T, manifest http.HandlerFunc) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			manifest(w, req)
			return
		}
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestManifestLargerThanTheLimitFails(t *testing.T) {
	endless := func(w http.ResponseWriter, req *http.Request) {
		io.WriteString(w, `{"schemaVersion": 2, "annotations": {"x": "`)
		for chunk := strings.Repeat("x", 64<<10); req.Context().Err() == nil; {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}
	declared := func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(MaxManifestSize+1))
		io.WriteString(w, "{")
	}
	for name, handler := range map[string]http.HandlerFunc{"streamed forever": endless, "declared too large": declared} {
		t.Run(name, func(t *testing.T) {
			host := manifestServer(t, handler)
			_, err := client(t, host).Get(someDigest, v1.Platform{})
			want := "fetch " + host + "/app@" + someDigest + ": "
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "larger than the limit of 4 MiB") {
				t.Fatalf("Get: %v; want %q and the limit", err, want)
			}
		})
	}
}

func TestConfigDeclaredLargerThanTheLimitFails(t *testing.T) {
	reg, digest := testharness.StartEndlessConfig(t)
	c, err := newInsecure(reg.Host + "/big")
	if err != nil {
		t.Fatal(err)
	}
	for _, get := range []func() error{
		func() error { _, err := c.Get(digest.String(), v1.Platform{}); return err },
		func() error { _, err := c.Lookup("latest", v1.Platform{}); return err },
	} {
		err := get()
		if err == nil || !strings.Contains(err.Error(), "config declares 8589934592 bytes, more than the limit of 32 MiB") {
			t.Errorf("got %v, want the config limit", err)
		}
	}
	for _, r := range reg.Requests() {
		if strings.Contains(r.Path, "/blobs/") {
			t.Errorf("the config was requested: %s %s", r.Method, r.Path)
		}
	}
}

// hugeConfig is an image whose manifest declares a config of 8 GB.
type hugeConfig struct{ v1.Image }

func (h hugeConfig) Manifest() (*v1.Manifest, error) {
	m, err := h.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.Config.Size = 8 << 30
	return m, nil
}

func TestCheckConfigsCoversEveryImageOfAnIndex(t *testing.T) {
	small, _ := random.Image(64, 1)
	other, _ := random.Image(64, 1)
	huge := hugeConfig{other}
	hugeDigest, _ := huge.Digest()
	inner := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: huge})
	for name, idx := range map[string]v1.ImageIndex{
		"flat":   mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: small}, mutate.IndexAddendum{Add: huge}),
		"nested": mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: small}, mutate.IndexAddendum{Add: inner}),
	} {
		err := (&Fetched{Image: small, Index: idx}).CheckConfigs()
		if err == nil || !strings.Contains(err.Error(), "image "+hugeDigest.String()+" of the index: config declares 8589934592 bytes, more than the limit of 32 MiB") {
			t.Errorf("%s: CheckConfigs: %v", name, err)
		}
	}
	fine := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: small})
	if err := (&Fetched{Image: small, Index: fine}).CheckConfigs(); err != nil {
		t.Errorf("an index of small images: %v", err)
	}
	if err := (&Fetched{Image: small}).CheckConfigs(); err != nil {
		t.Errorf("no index: %v", err)
	}
}
