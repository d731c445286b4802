package bench

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Default link of the shaped-network mode (issue 19): 30 ms per request, 20 MB/s per stream.
const (
	DefaultShapeDelay = 30 * time.Millisecond
	DefaultShapeRate  = 20e6 // bytes per second
)

// Shape is a simulated network link between the tools and the registry: every request waits
// Delay before it reaches the registry (the round trip a remote registry costs), and every body,
// the response's as the request's (uploads), flows at most Rate bytes per second, each stream on
// its own bucket, as on a link where one TCP stream is held to that rate. The zero Shape is
// loopback.
type Shape struct {
	Delay time.Duration
	Rate  float64 // bytes per second per stream; 0: unlimited
	// Streams, when set, counts the blob downloads in flight (G1's observed parallelism).
	Streams *StreamGauge `json:"-"`
	// Trace, when set, gets one line per request once its response is written: start and end
	// (wall clock, ms), method, path, response body bytes (where a get's time goes).
	Trace io.Writer `json:"-"`
}

// StreamGauge counts blob GETs in flight and remembers the most at once since its last Reset.
type StreamGauge struct {
	mu        sync.Mutex
	now, peak int
}

// enter counts a blob GET starting.
func (g *StreamGauge) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now++
	g.peak = max(g.peak, g.now)
}

// leave counts a blob GET ending.
func (g *StreamGauge) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now--
}

// Reset returns the most blob GETs in flight at once since the last Reset and starts again.
func (g *StreamGauge) Reset() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	peak := g.peak
	g.peak = g.now
	return peak
}

// On reports whether s changes anything.
func (s Shape) On() bool { return s.Delay > 0 || s.Rate > 0 }

// String is how reports name s, e.g. "30 ms per request, 20 MB/s per stream".
func (s Shape) String() string {
	if !s.On() {
		return "loopback"
	}
	rate := "unlimited"
	if s.Rate > 0 {
		rate = formatRate(s.Rate)
	}
	return s.Delay.String() + " per request, " + rate + " per stream"
}

// formatRate writes bytes per second as MB/s.
func formatRate(rate float64) string {
	return strconv.FormatFloat(rate/1e6, 'g', 3, 64) + " MB/s"
}

// Wrap returns next behind the link: the request is delayed, its body and the response's body
// are paced.
func (s Shape) Wrap(next http.Handler) http.Handler {
	if !s.On() && s.Streams == nil && s.Trace == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		if s.Streams != nil && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			s.Streams.enter()
			defer s.Streams.leave()
		}
		if s.Delay > 0 {
			select {
			case <-time.After(s.Delay):
			case <-req.Context().Done():
				return
			}
		}
		if s.Rate > 0 {
			if req.Body != nil && req.Body != http.NoBody {
				req.Body = &pacedReader{ReadCloser: req.Body, bucket: newBucket(s.Rate)}
			}
			w = &pacedWriter{ResponseWriter: w, bucket: newBucket(s.Rate)}
		}
		if s.Trace != nil {
			cw := &countingWriter{ResponseWriter: w}
			w = cw
			defer func() { s.trace(start, req, cw.n) }()
		}
		next.ServeHTTP(w, req)
	})
}

// trace writes req's line to s.Trace.
func (s Shape) trace(start time.Time, req *http.Request, n int64) {
	traceMu.Lock()
	defer traceMu.Unlock()
	fmt.Fprintf(s.Trace, "trace %s %s %s %s %d\n", start.Format("15:04:05.000"), time.Now().Format("15:04:05.000"),
		req.Method, req.URL.Path, n)
}

var traceMu sync.Mutex

// bucket is a token bucket of one stream: rate bytes per second, with a burst of 64 KiB (a TCP
// window's worth), so a stream's average never exceeds rate.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

// burst is the most a stream may send at once after being idle.
const burst = 64 << 10

// newBucket is a full bucket of rate bytes per second.
func newBucket(rate float64) *bucket {
	return &bucket{rate: rate, tokens: burst, last: time.Now()}
}

// take waits until n bytes may pass. n is at most burst (callers split larger writes).
func (b *bucket) take(n int) {
	now := time.Now()
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	if b.tokens < 0 {
		time.Sleep(time.Duration(-b.tokens / b.rate * float64(time.Second)))
	}
}

// pacedWriter is a response writer whose body flows at its bucket's rate.
type pacedWriter struct {
	http.ResponseWriter
	bucket *bucket
}

// Write sends p in pieces of at most 16 KiB, each when the bucket allows.
func (p *pacedWriter) Write(data []byte) (int, error) {
	written := 0
	for len(data) > 0 {
		n := min(len(data), 16<<10)
		p.bucket.take(n)
		m, err := p.ResponseWriter.Write(data[:n])
		written += m
		if err != nil {
			return written, err
		}
		data = data[n:]
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush).
func (p *pacedWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// Flush passes a flush through, as the reverse proxy asks for it.
func (p *pacedWriter) Flush() {
	if f, ok := p.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// pacedReader is a request body read at its bucket's rate (uploads).
type pacedReader struct {
	io.ReadCloser
	bucket *bucket
}

// Read reads at most 16 KiB and waits until the bucket allows what it read.
func (p *pacedReader) Read(data []byte) (int, error) {
	n, err := p.ReadCloser.Read(data[:min(len(data), 16<<10)])
	if n > 0 {
		p.bucket.take(n)
	}
	return n, err
}
