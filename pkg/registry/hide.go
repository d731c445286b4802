package registry

import (
	"net/http"
	"strings"
)

// Option tunes a Client.
type Option func(*settings)

type settings struct {
	hide      func(secrets ...string)
	uploads   int // concurrent blob uploads, 0 for go-containerregistry's default (4)
	downloads int // concurrent blob downloads, 0 for go-containerregistry's default (4)
}

// WithUploads bounds the concurrent blob uploads (source.max_concurrent_uploads).
func WithUploads(n int) Option {
	return func(s *settings) { s.uploads = n }
}

// WithDownloads bounds the concurrent blob downloads (source.max_concurrent_downloads): the
// reads' limiter, which go-containerregistry would otherwise hold to the uploads' bound.
func WithDownloads(n int) Option {
	return func(s *settings) { s.downloads = n }
}

// HideWith has the client tell hide every credential it sends, before it is sent: the source's
// Basic credentials and the bearer tokens the registry's token server hands out, which a
// registry may echo in an error.
func HideWith(hide func(secrets ...string)) Option {
	return func(s *settings) { s.hide = hide }
}

func newSettings(opts []Option) settings {
	s := settings{hide: func(...string) {}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// hideCredentials passes the credential of every request's Authorization header to hide.
type hideCredentials struct {
	next http.RoundTripper
	hide func(secrets ...string)
}

func (h hideCredentials) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, credential, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok {
		h.hide(strings.TrimSpace(credential))
	}
	return h.next.RoundTrip(req)
}
