package bench

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
)

// MirrorProxy is a plain-HTTP forward proxy on 127.0.0.1 that counts the response bytes it
// relays. RUN steps reach Debian's mirror through it (apt-get honours http_proxy, which every
// tool passes to RUN as a predefined build arg), so a put's apt downloads can be counted.
type MirrorProxy struct {
	srv  *http.Server
	addr string
	down atomic.Int64
}

// StartMirrorProxy starts the proxy. It relays plain HTTP only (CONNECT is refused): Debian's
// mirror is reached over http://.
func StartMirrorProxy() (*MirrorProxy, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the mirror proxy: %w", err)
	}
	m := &MirrorProxy{addr: listener.Addr().String()}
	// The transport ignores the harness's own proxy environment: the proxy goes direct.
	transport := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{}).DialContext, MaxIdleConnsPerHost: 8}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL = pr.In.URL },
		Transport: transport,
	}
	m.srv = &http.Server{Handler: m.handler(proxy)}
	go m.srv.Serve(listener)
	return m, nil
}

// URL is the proxy's address for http_proxy.
func (m *MirrorProxy) URL() string { return "http://" + m.addr }

// Reset returns the bytes relayed to clients since the last Reset and starts again from zero.
func (m *MirrorProxy) Reset() int64 {
	if m == nil {
		return 0
	}
	return m.down.Swap(0)
}

// Close stops the proxy.
func (m *MirrorProxy) Close() {
	if m != nil {
		m.srv.Close()
	}
}

func (m *MirrorProxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodConnect || !req.URL.IsAbs() || req.URL.Scheme != "http" {
			http.Error(w, "the benchmark's mirror proxy relays plain http:// requests only", http.StatusBadRequest)
			return
		}
		cw := &countingWriter{ResponseWriter: w}
		next.ServeHTTP(cw, req)
		m.down.Add(cw.n)
	})
}
