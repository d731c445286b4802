package registry

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/imagesmith/buildah-image-resource/pkg/progress"
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
	counted.Body = progress.Counting{ReadCloser: req.Body, N: c.sent}
	return c.next.RoundTrip(counted)
}
