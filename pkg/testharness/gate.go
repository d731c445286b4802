package testharness

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Gate proves that work runs in parallel without timing it: each Enter waits until want callers
// are inside at once (or a generous deadline passes, so a serial caller fails its test instead of
// hanging), and Most says how many were ever inside together.
type Gate struct {
	mu         sync.Mutex
	open, most int
	want       int
	all        chan struct{}
	once       sync.Once
}

// NewGate opens when want callers are inside.
func NewGate(want int) *Gate { return &Gate{want: want, all: make(chan struct{})} }

// Enter counts a caller in and waits for the others.
func (g *Gate) Enter() {
	g.mu.Lock()
	g.open++
	g.most = max(g.most, g.open)
	if g.open >= g.want {
		g.once.Do(func() { close(g.all) })
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-time.After(10 * time.Second):
	}
}

// Leave counts a caller out.
func (g *Gate) Leave() { g.mu.Lock(); g.open--; g.mu.Unlock() }

// Most is the most callers that were inside at once.
func (g *Gate) Most() int { g.mu.Lock(); defer g.mu.Unlock(); return g.most }

// WithBlobGate is r behind a proxy that passes every blob download (a GET of /blobs/) but pass's
// through gate, for the whole of its response.
func (r *Registry) WithBlobGate(t testing.TB, gate *Gate, pass v1.Hash) *Registry {
	t.Helper()
	if !r.Insecure {
		t.Fatal("WithBlobGate: only plain HTTP registries (StartInProcess)")
	}
	next := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: r.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") && !strings.HasSuffix(req.URL.Path, pass.String()) {
			gate.Enter()
			defer gate.Leave()
		}
		next.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return &Registry{Host: srv.Listener.Addr().String(), Insecure: true, transport: r.transport}
}
