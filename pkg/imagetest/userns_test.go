package imagetest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// A Docker daemon with user namespaces (--userns-remap=default): container root is an
// unprivileged user of the host, as in Concourse's unprivileged containers.
const (
	usernsHost     = "unix:///run/buildah-image-resource-test-userns.sock"
	usernsDataRoot = "/var/lib/buildah-image-resource-test-userns"
	usernsExecRoot = "/run/buildah-image-resource-test-userns"
	// proxyAddr is where, in the container, apt's http_proxy listens (relayed to the test's
	// forward proxy).
	proxyAddr = "127.0.0.1:3128"
)

// TestUnprivilegedPutsInAUserNamespace runs the puts of testUnprivilegedPuts in a user
// namespace too. A user-namespaced daemon refuses the host network, so the container has none:
// testdata/relay listens on the registry's address and on proxyAddr inside it and carries each
// connection through a Unix socket to the test, which forwards it to the registry or, as a
// forward proxy, to the Debian mirror (out passes http_proxy to RUN steps as a build arg).
func TestUnprivilegedPutsInAUserNamespace(t *testing.T) {
	image := buildResourceImage(t)
	startDaemon(t, usernsHost, "--host", usernsHost, "--userns-remap=default",
		"--data-root", usernsDataRoot, "--exec-root", usernsExecRoot, "--pidfile", usernsExecRoot+".pid",
		"--bridge", "none", "--iptables=false", "--ip6tables=false")
	run(t, dockerCmdTimeout, nil, "sh", "-c", "docker save \"$1\" | docker --host \"$2\" load", "sh", image, usernsHost)
	t.Cleanup(func() { bounded(dockerCmdTimeout, "docker", "--host", usernsHost, "image", "rm", "--force", image) })
	rootUID := remappedRoot(t)

	reg := testharness.StartInProcess(t)
	regAddr := strings.Split(reg.Ref("x"), "/")[0]
	sockets := t.TempDir()
	if err := os.Chmod(sockets, 0o755); err != nil {
		t.Fatal(err)
	}
	serveUnix(t, filepath.Join(sockets, "registry.sock"), func(c net.Conn) { pipeTo(c, regAddr) })
	proxy := &http.Server{Handler: http.HandlerFunc(forwardProxy)}
	serveUnix(t, filepath.Join(sockets, "proxy.sock"), nil, proxy)
	relay := filepath.Join(t.TempDir(), "relay")
	run(t, 5*time.Minute, nil, "env", "CGO_ENABLED=0", "GOFLAGS=", "go", "build", "-o", relay, "./testdata/relay")

	testUnprivilegedPuts(t, reg, unprivileged{
		container: container{
			host: usernsHost, image: image,
			flags: unprivilegedFlags("--network", "none", "--env", "http_proxy=http://"+proxyAddr,
				"--volume", sockets+":/relay", "--volume", relay+":/opt/relay:ro"),
			wrapper: []string{"/opt/relay", regAddr + "=/relay/registry.sock", proxyAddr + "=/relay/proxy.sock", "--"},
		},
		prepare: func(t *testing.T, work string) {
			run(t, dockerCmdTimeout, nil, "chown", "-R", rootUID+":"+rootUID, work)
		},
	})
}

// remappedRoot is the host uid that container root is in the user-namespaced daemon: the
// first of dockremap's subordinate ids.
func remappedRoot(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/etc/subuid")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		fields := strings.Split(s.Text(), ":")
		if len(fields) == 3 && fields[0] == "dockremap" {
			if _, err := strconv.Atoi(fields[1]); err == nil {
				return fields[1]
			}
		}
	}
	t.Fatal("/etc/subuid has no range for dockremap (dockerd --userns-remap=default makes it)")
	return ""
}

// serveUnix listens on a Unix socket anyone may connect to (container root is not the host's)
// and hands each connection to handle, or serves srv on it, until the test ends.
func serveUnix(t *testing.T, path string, handle func(net.Conn), srv ...*http.Server) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if len(srv) > 0 {
		go srv[0].Serve(l)
		t.Cleanup(func() { srv[0].Close() })
		return
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// pipeTo carries c to and from a TCP connection to addr.
func pipeTo(c net.Conn, addr string) {
	defer c.Close()
	u, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer u.Close()
	go io.Copy(u, c)
	io.Copy(c, u)
}

// forwardProxy is a plain HTTP forward proxy (apt asks it for absolute URLs), enough for the
// Debian mirror.
func forwardProxy(w http.ResponseWriter, r *http.Request) {
	if r.URL.Scheme != "http" {
		http.Error(w, "only http:// URLs are forwarded", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL = &url.URL{Scheme: r.URL.Scheme, Host: r.URL.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
