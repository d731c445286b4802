package testharness

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Entry is one entry of a hostile layer: any tar header, and a regular file's content.
type Entry struct {
	tar.Header
	Body string
}

// WithLayer returns img with one more layer made of entries exactly as given (names, link
// targets, owners and modes are not cleaned), as an attacker would write it.
func WithLayer(t testing.TB, img v1.Image, entries ...Entry) v1.Image {
	t.Helper()
	list := make([]tarEntry, len(entries))
	for i, e := range entries {
		hdr := e.Header
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if len(hdr.PAXRecords) > 0 {
			hdr.Format = tar.FormatPAX
		}
		list[i] = tarEntry{header: hdr, body: []byte(e.Body)}
	}
	out, err := appendLayerAs(img, "hostile layer", list, false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Tamper changes the body of a GET response (a manifest or a blob) before it reaches the client;
// it gets the request's path and returns the body to send.
type Tamper func(path string, body []byte) []byte

// WithTamper returns the registry as reached through an in-process proxy on 127.0.0.1 that passes
// the body of every successful GET through tamper: a blob can be swapped, flipped or stretched.
// Only plain HTTP registries (StartInProcess).
func (r *Registry) WithTamper(t testing.TB, tamper Tamper) *Registry {
	t.Helper()
	if !r.Insecure {
		t.Fatal("WithTamper: only plain HTTP registries (StartInProcess)")
	}
	target := &url.URL{Scheme: "http", Host: r.Host}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Range") // the tamper sees and sends whole bodies
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			body = tamper(resp.Request.URL.Path, body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return &Registry{Host: srv.Listener.Addr().String(), Insecure: true, transport: r.transport}
}
