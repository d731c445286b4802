package testharness

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BlobHost is where StartRedirecting's registry sends blob downloads: another port of
// 127.0.0.1. It records the Authorization header of every request it gets.
type BlobHost struct {
	URL string // http://127.0.0.1:port

	mu    sync.Mutex
	auths []string // one per request, "" when it had none
}

// Authorizations returns the Authorization header of each request the blob host got, in order.
func (b *BlobHost) Authorizations() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.auths...)
}

// StartRedirecting is StartEcho's registry (basic auth; wrong credentials get a 401) that
// answers every blob GET with a 307 to the same path on a BlobHost, which serves the blob
// without asking for credentials, as registries that keep blobs in object storage do.
func StartRedirecting(t testing.TB) (*Registry, *BlobHost) {
	t.Helper()
	password, err := randomHex(12)
	if err != nil {
		t.Fatal(err)
	}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	blobs := &BlobHost{}
	blobSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		blobs.mu.Lock()
		blobs.auths = append(blobs.auths, req.Header.Get("Authorization"))
		blobs.mu.Unlock()
		inner.ServeHTTP(w, req)
	}))
	t.Cleanup(blobSrv.Close)
	blobs.URL = blobSrv.URL

	redirect := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			http.Redirect(w, req, blobs.URL+req.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		inner.ServeHTTP(w, req)
	})
	r := &Registry{Username: DistributionUsername, Password: password, Insecure: true, transport: newTransport(nil)}
	srv := httptest.NewServer(r.record(basicAuth(r.Username, password, Echo{Status: http.StatusUnauthorized, Plain: true}, redirect)))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r, blobs
}

// EndlessConfigSize is the config size the manifest of StartEndlessConfig's image declares.
const EndlessConfigSize = 8 << 30

// StartEndlessConfig starts a registry (plain HTTP, no auth) holding one image, big:latest,
// whose manifest declares a config of EndlessConfigSize bytes; a GET of that config streams
// zeros until the client goes away. It returns the registry and the manifest's digest.
func StartEndlessConfig(t testing.TB) (*Registry, v1.Hash) {
	t.Helper()
	manifest := HugeConfigManifest(t)
	digest := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(manifest))}
	r := &Registry{Insecure: true, transport: newTransport(nil)}
	srv := httptest.NewServer(r.record(endlessConfig(manifest, digest)))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r, digest
}

func endlessConfig(manifest []byte, digest v1.Hash) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		path := req.URL.Path
		switch {
		case path == "/v2/":
			io.WriteString(w, "{}")
		case path == "/v2/big/manifests/latest" || path == "/v2/big/manifests/"+digest.String():
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			w.Header().Set("Docker-Content-Digest", digest.String())
			w.Write(manifest)
		case strings.HasPrefix(path, "/v2/big/blobs/"):
			streamZeros(w, req)
		default:
			http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}`, http.StatusNotFound)
		}
	})
}

// streamZeros writes zeros until the client goes away.
func streamZeros(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	chunk := make([]byte, 64<<10)
	flush := http.NewResponseController(w)
	for req.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		_ = flush.Flush()
	}
}

func fakeDigest(of string) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte(of)))}
}

// PushRaw writes manifest, a manifest or an index of mediaType, as it is to ref, whether the
// blobs it names are there or not, and returns its digest.
func (r *Registry) PushRaw(t testing.TB, ref string, mediaType types.MediaType, manifest []byte) v1.Hash {
	t.Helper()
	if err := remote.Put(r.parse(t, ref), rawManifest{mediaType, manifest}, r.remoteOptions()...); err != nil {
		t.Fatalf("putting manifest %s: %v", ref, err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(manifest))}
}

type rawManifest struct {
	mediaType types.MediaType
	raw       []byte
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

// HugeConfigManifest is an OCI manifest declaring a config of EndlessConfigSize bytes that no
// registry holds.
func HugeConfigManifest(t testing.TB) []byte {
	t.Helper()
	manifest, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: EndlessConfigSize, Digest: fakeDigest("config")},
		Layers:        []v1.Descriptor{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return manifest
}
