package testharness

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Faults says what a fault proxy does to the requests passing through it. Rates are shares of
// requests from 0 to 1, drawn from a seeded generator so a run can be repeated.
type Faults struct {
	ResetRate    float64       // the connection is reset (TCP RST) instead of answering
	ResetFirst   int           // the first ResetFirst requests are reset, whatever the rates
	StatusRate   float64       // answered with Status (default 503) instead of being forwarded
	Status       int           //
	TooManyRate  float64       // answered 429 with Retry-After: RetryAfter seconds
	RetryAfter   int           //
	TruncateRate float64       // a blob download stops after half its body, the connection closed
	Delay        time.Duration // added before every request is forwarded
	// Fail, when set, is asked first: a non-zero status answers the request with it.
	Fail func(r *http.Request, n int) int
	Seed uint64
}

// WithFaults returns the registry as reached through an in-process proxy on 127.0.0.1 that
// injects faults; what gets through reaches r (and r's recorder). Only plain HTTP registries.
func (r *Registry) WithFaults(t testing.TB, f Faults) *Registry {
	t.Helper()
	if !r.Insecure {
		t.Fatal("WithFaults: only plain HTTP registries (StartInProcess)")
	}
	p := &faultProxy{faults: f, rng: rand.New(rand.NewPCG(f.Seed, f.Seed+1))}
	target := &url.URL{Scheme: "http", Host: r.Host}
	p.next = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &Registry{Host: srv.Listener.Addr().String(), Insecure: true, transport: r.transport}
}

type faultProxy struct {
	faults Faults
	next   http.Handler
	count  atomic.Int64
	mu     sync.Mutex
	rng    *rand.Rand
}

func (p *faultProxy) roll(rate float64) bool {
	if rate <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64() < rate
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := int(p.count.Add(1))
	f := p.faults
	time.Sleep(f.Delay)
	if f.Fail != nil {
		if status := f.Fail(req, n); status != 0 {
			http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, status)
			return
		}
	}
	switch {
	case n <= f.ResetFirst, p.roll(f.ResetRate):
		reset(w)
	case p.roll(f.StatusRate):
		status := f.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		http.Error(w, "injected", status)
	case p.roll(f.TooManyRate):
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		http.Error(w, "injected", http.StatusTooManyRequests)
	case req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") && p.roll(f.TruncateRate):
		p.next.ServeHTTP(&truncatingWriter{ResponseWriter: w}, req)
		panic(http.ErrAbortHandler) // close the connection mid-body
	default:
		p.next.ServeHTTP(w, req)
	}
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

// truncatingWriter passes the headers (with the full Content-Length) and half of the body.
type truncatingWriter struct {
	http.ResponseWriter
	limit, written int64
}

func (t *truncatingWriter) WriteHeader(status int) {
	t.limit, _ = strconv.ParseInt(t.Header().Get("Content-Length"), 10, 64)
	t.limit /= 2
	t.ResponseWriter.WriteHeader(status)
}

func (t *truncatingWriter) Write(b []byte) (int, error) {
	if room := t.limit - t.written; int64(len(b)) > room {
		b = b[:max(room, 0)]
	}
	n, err := t.ResponseWriter.Write(b)
	t.written += int64(n)
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}
