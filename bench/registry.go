package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/progress"
)

// Traffic is what a registry's clients sent and received through the counting proxy.
type Traffic struct {
	Down, Up int64 // body bytes sent to clients (manifests, configs, layers) and received from them
	BlobGets int   // successful GET /v2/.../blobs/sha256:...
	Uploads  int   // completed blob uploads (PUT ending an upload, or a monolithic POST)
	Requests int
}

// Registry is Debian's docker-registry (CNCF distribution) on plain HTTP on 127.0.0.1, behind
// an in-process reverse proxy that counts the traffic. Every tool talks to Host, the proxy.
type Registry struct {
	Host string // "127.0.0.1:port" of the proxy

	cmd *exec.Cmd
	srv *http.Server

	mu      sync.Mutex
	traffic Traffic
}

// StartRegistry starts the registry storing its blobs under dir.
func StartRegistry(dir string) (*Registry, error) { return StartShapedRegistry(dir, Shape{}) }

// StartShapedRegistry starts the registry storing its blobs under dir, its proxy behind the
// simulated link shape (issue 19; the zero Shape is loopback).
func StartShapedRegistry(dir string, shape Shape) (*Registry, error) {
	backend, err := freeAddr()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "config.yml")
	text := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %q}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: %q}
`, filepath.Join(dir, "data"), backend)
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("writing the registry config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	r := &Registry{cmd: exec.Command("docker-registry", "serve", config)}
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting docker-registry (Debian package docker-registry): %w", err)
	}
	if err := waitHTTP("http://"+backend+"/v2/", 30*time.Second); err != nil {
		r.Close()
		return nil, fmt.Errorf("docker-registry: %w", err)
	}

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("listening for the registry proxy: %w", err)
	}
	r.Host = listener.Addr().String()
	target := &url.URL{Scheme: "http", Host: backend}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // upload locations then point back at the proxy
	}}
	r.srv = &http.Server{Handler: shape.Wrap(r.count(proxy))}
	go r.srv.Serve(listener)
	return r, nil
}

// Reset returns the traffic counted since the last Reset and starts counting from zero.
func (r *Registry) Reset() Traffic {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.traffic
	r.traffic = Traffic{}
	return t
}

// Close stops the proxy and the registry.
func (r *Registry) Close() {
	if r.srv != nil {
		r.srv.Close()
	}
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

func (r *Registry) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		var up atomic.Int64 // the transport may read the body from another goroutine
		req.Body = progress.Counting{ReadCloser: req.Body, N: &up}
		next.ServeHTTP(cw, req)

		r.mu.Lock()
		defer r.mu.Unlock()
		r.traffic.Requests++
		r.traffic.Down += cw.n
		r.traffic.Up += up.Load()
		ok := cw.status >= 200 && cw.status < 300
		switch {
		case !ok:
		case req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:"):
			r.traffic.BlobGets++
		case req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/"),
			req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/blobs/uploads/") && up.Load() > 0:
			r.traffic.Uploads++
		}
	})
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHTTP waits until url answers with any HTTP status.
func waitHTTP(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUnixHTTP waits until an HTTP server on a unix socket answers path with 200.
func waitUnixHTTP(ctx context.Context, socket, path string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get("http://daemon" + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not answer %s within %s: %w", socket, path, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
