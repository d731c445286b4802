package testharness

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is a registry listening on 127.0.0.1 behind an in-process
// recorder of every request it receives. It is stopped by t.Cleanup.
type Registry struct {
	Host               string // "127.0.0.1:port"
	Username, Password string // "" for none
	CACertPEM          string // "" for plain HTTP
	// ClientCertPEM and ClientKeyPEM are the client certificate a mutual-TLS registry wants.
	ClientCertPEM, ClientKeyPEM string
	Insecure                    bool // plain HTTP

	transport http.RoundTripper // trusts CACertPEM

	mu       sync.Mutex // guards requests and what they point to
	requests []*Request
}

// Request is one request the registry answered, as seen by the recorder.
type Request struct {
	Method, Path      string
	Authorization     string // the Authorization header as received, "" for none
	Status            int
	BytesIn, BytesOut int64 // request body bytes read, response body bytes written
}

// StartInProcess starts go-containerregistry's registry (in memory, no auth)
// on plain HTTP.
func StartInProcess(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{Insecure: true, transport: newTransport(nil)}
	handler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(r.record(handler))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r
}

// StartInProcessOn is StartInProcess listening on ip (any 127.0.0.0/8 address is local), e.g.
// to be told from other registries by address range.
func StartInProcessOn(t testing.TB, ip string) *Registry {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listening on %s: %v", ip, err)
	}
	r := &Registry{Insecure: true, transport: newTransport(nil)}
	srv := httptest.NewUnstartedServer(r.record(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	r.Host = l.Addr().String()
	return r
}

// Requests returns a copy of the requests recorded so far, in the order
// they arrived. A request still being answered has Status 0 until its
// status is sent.
func (r *Registry) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	requests := make([]Request, len(r.requests))
	for i, req := range r.requests {
		requests[i] = *req
	}
	return requests
}

// ResetRequests forgets the requests recorded so far.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// BlobUploads returns how many blob uploads completed (a successful PUT on
// /blobs/uploads/, or a monolithic POST with a body) and how many bytes of
// blob content the registry received in successful POST, PATCH and PUT
// requests on /blobs/uploads/. Cross-repository mounts and blobs the client
// found already present count for nothing.
func (r *Registry) BlobUploads() (count int, bytes int64) {
	for _, req := range r.Requests() {
		if !strings.Contains(req.Path, "/blobs/uploads/") || req.Status < 200 || req.Status > 299 {
			continue
		}
		switch req.Method {
		case http.MethodPut:
			count++
		case http.MethodPost:
			if req.BytesIn > 0 {
				count++
			}
		case http.MethodPatch:
		default:
			continue
		}
		bytes += req.BytesIn
	}
	return count, bytes
}

// BlobDownloads returns how many successful GET /blobs/sha256:... requests
// the registry served and how many body bytes it sent for them.
func (r *Registry) BlobDownloads() (count int, bytes int64) {
	for _, req := range r.Requests() {
		if req.Method != http.MethodGet || !strings.Contains(req.Path, "/blobs/sha256:") {
			continue
		}
		if req.Status == http.StatusOK || req.Status == http.StatusPartialContent {
			count++
			bytes += req.BytesOut
		}
	}
	return count, bytes
}

// Ref returns Host + "/" + repoAndTag.
func (r *Registry) Ref(repoAndTag string) string {
	return r.Host + "/" + repoAndTag
}

// Push writes img to ref with the registry's credentials and CA and returns
// its manifest digest.
func (r *Registry) Push(t testing.TB, ref string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(r.parse(t, ref), img, r.remoteOptions()...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatalf("digest of image pushed to %s: %v", ref, err)
	}
	return digest
}

// PushIndex writes idx (and its images) to ref and returns its digest.
func (r *Registry) PushIndex(t testing.TB, ref string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	if err := remote.WriteIndex(r.parse(t, ref), idx, r.remoteOptions()...); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatalf("digest of index pushed to %s: %v", ref, err)
	}
	return digest
}

// Digest returns the digest the registry has for ref (a HEAD request); the
// test fails if ref is missing.
func (r *Registry) Digest(t testing.TB, ref string) v1.Hash {
	t.Helper()
	desc, err := remote.Head(r.parse(t, ref), r.remoteOptions()...)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest
}

// Image returns the image at ref, read lazily from the registry.
func (r *Registry) Image(t testing.TB, ref string) v1.Image {
	t.Helper()
	img, err := remote.Image(r.parse(t, ref), r.remoteOptions()...)
	if err != nil {
		t.Fatalf("reading image %s: %v", ref, err)
	}
	return img
}

// Index returns the image index at ref, read lazily from the registry.
func (r *Registry) Index(t testing.TB, ref string) v1.ImageIndex {
	t.Helper()
	idx, err := remote.Index(r.parse(t, ref), r.remoteOptions()...)
	if err != nil {
		t.Fatalf("reading index %s: %v", ref, err)
	}
	return idx
}

// Source returns the part of a Concourse `source` that reaches this
// registry, without "repository": {"username", "password", "ca_certs"} for
// a TLS registry, {"insecure": true} for a plain HTTP one.
func (r *Registry) Source() map[string]any {
	source := map[string]any{}
	if r.Insecure {
		source["insecure"] = true
	}
	if r.Username != "" {
		source["username"] = r.Username
		source["password"] = r.Password
	}
	if r.CACertPEM != "" {
		source["ca_certs"] = []string{r.CACertPEM}
	}
	if r.ClientCertPEM != "" {
		source["client_certs"] = []map[string]string{{"domain": r.Host, "cert": r.ClientCertPEM, "key": r.ClientKeyPEM}}
	}
	return source
}

func (r *Registry) parse(t testing.TB, ref string) name.Reference {
	t.Helper()
	var opts []name.Option
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	parsed, err := name.ParseReference(ref, opts...)
	if err != nil {
		t.Fatalf("parsing reference %q: %v", ref, err)
	}
	return parsed
}

func (r *Registry) remoteOptions() []remote.Option {
	var auth authn.Authenticator = authn.Anonymous
	if r.Username != "" {
		auth = &authn.Basic{Username: r.Username, Password: r.Password}
	}
	transport := r.transport
	if transport == nil { // a Registry made by hand
		transport = newTransport([]byte(r.CACertPEM))
	}
	return []remote.Option{remote.WithAuth(auth), remote.WithTransport(transport)}
}

// record wraps next so that every request it answers is recorded. A
// request's counts are updated before any byte reaches the client, so when
// a client has seen a response, the recorder has it too.
func (r *Registry) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := &recording{registry: r, request: &Request{Method: req.Method, Path: req.URL.Path, Authorization: req.Header.Get("Authorization")}}
		r.mu.Lock()
		r.requests = append(r.requests, rec.request)
		r.mu.Unlock()

		req.Body = &countingReader{ReadCloser: req.Body, rec: rec}
		next.ServeHTTP(&countingWriter{ResponseWriter: w, rec: rec}, req)
		rec.update(func(req *Request) {
			if req.Status == 0 { // the handler wrote nothing: net/http sends 200
				req.Status = http.StatusOK
			}
		})
	})
}

// recording is one request being recorded; its updates hold the
// registry's lock, as the reverse proxy sends request bodies from another
// goroutine.
type recording struct {
	registry *Registry
	request  *Request
}

func (rec *recording) update(f func(*Request)) {
	rec.registry.mu.Lock()
	defer rec.registry.mu.Unlock()
	f(rec.request)
}

// newTransport returns an HTTP transport that trusts the system roots plus
// caPEM (if any) and uses no proxy.
func newTransport(caPEM []byte) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if caPEM != nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return tr
}

type countingReader struct {
	io.ReadCloser
	rec *recording
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.rec.update(func(req *Request) { req.BytesIn += int64(n) })
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	rec *recording
}

func (c *countingWriter) WriteHeader(status int) {
	c.rec.update(func(req *Request) {
		if req.Status == 0 && status >= 200 { // 1xx responses are informational
			req.Status = status
		}
	})
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.rec.update(func(req *Request) {
		if req.Status == 0 {
			req.Status = http.StatusOK
		}
		req.BytesOut += int64(len(p))
	})
	n, err := c.ResponseWriter.Write(p)
	if n < len(p) {
		c.rec.update(func(req *Request) { req.BytesOut -= int64(len(p) - n) })
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flushes).
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
