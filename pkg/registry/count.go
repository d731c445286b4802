package registry

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// countUploads counts the bytes of blob upload bodies sent through it: what a push really
// uploaded, without the blobs the registry had or mounted.
type countUploads struct {
	next http.RoundTripper
	sent *atomic.Int64
}

func (c countUploads) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody || !strings.Contains(req.URL.Path, "/blobs/uploads/") {
		return c.next.RoundTrip(req)
	}
	counted := req.Clone(req.Context())
	counted.Body = countingBody{req.Body, c.sent}
	return c.next.RoundTrip(counted)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
