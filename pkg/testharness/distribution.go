package testharness

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// DistributionUsername is the user StartDistribution's registries accept.
const DistributionUsername = "concourse"

// StartDistribution starts Debian's docker-registry (CNCF distribution) with
// htpasswd basic auth and TLS from a CA made for the test, storing blobs in
// t.TempDir(). Clients talk TLS + basic auth to an in-process recording
// reverse proxy that presents the same CA-signed certificate (for
// 127.0.0.1 and localhost) and forwards to the registry over TLS.
//
// Without the docker-registry binary the test is skipped, or fails when
// CI=true.
func StartDistribution(t testing.TB) *Registry {
	t.Helper()
	return startDistribution(t, DistributionUsername, false)
}

// StartDistributionAs is StartDistribution with another username, e.g. ECR's "AWS".
func StartDistributionAs(t testing.TB, username string) *Registry {
	t.Helper()
	return startDistribution(t, username, false)
}

// StartMutualTLS starts docker-registry with no password but client-certificate auth: it and
// its recording proxy accept only clients presenting a certificate of their test CA
// (distribution's http.tls.clientcas). The registry's ClientCertPEM and ClientKeyPEM are one.
func StartMutualTLS(t testing.TB) *Registry {
	t.Helper()
	return startDistribution(t, "", true)
}

func startDistribution(t testing.TB, username string, mutual bool) *Registry {
	t.Helper()
	bin := RequireCommand(t, "docker-registry", "docker-registry")
	certs, err := newTestCerts()
	if err != nil {
		t.Fatalf("creating test CA: %v", err)
	}
	password, err := randomHex(12)
	if err != nil {
		t.Fatalf("creating password: %v", err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	r := &Registry{CACertPEM: string(certs.caPEM)}
	if !mutual {
		r.Username, r.Password = username, password
	}
	config, err := writeDistributionConfig(t.TempDir(), t.TempDir(), addr, certs, r.Username, r.Password)
	if err != nil {
		t.Fatalf("writing docker-registry config: %v", err)
	}

	transport := newTransport(certs.caPEM)
	if mutual {
		r.ClientCertPEM, r.ClientKeyPEM = string(certs.clientPEM), string(certs.clientKeyPEM)
		transport.TLSClientConfig.Certificates = []tls.Certificate{certs.client}
	}
	t.Cleanup(transport.CloseIdleConnections)
	runDistribution(t, bin, config, "https://"+addr+"/v2/", transport)
	r.transport = transport

	srv := httptest.NewUnstartedServer(r.record(reverseProxy(addr, transport)))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{certs.server}}
	if mutual {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(certs.caPEM)
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, pool
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r
}

// runDistribution starts the registry, stops it at cleanup, and waits until
// it answers on health (any HTTP status will do).
func runDistribution(t testing.TB, bin, config, health string, transport http.RoundTripper) {
	t.Helper()
	var logs LockedBuffer
	cmd := exec.Command(bin, "serve", config)
	cmd.Env = withoutRegistryVars(os.Environ())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	client := &http.Client{Transport: transport, Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(health)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case waitErr := <-exited:
			t.Fatalf("docker-registry exited before answering (%v); its log:\n%s", waitErr, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry did not answer %s within 30s (last error: %v); its log:\n%s", health, err, logs.String())
		}
	}
}

// reverseProxy forwards to the registry at addr over TLS. It keeps the
// client's Host header, so the upload locations the registry returns point
// back at the proxy.
func reverseProxy(addr string, transport http.RoundTripper) http.Handler {
	target := &url.URL{Scheme: "https", Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: transport,
	}
}

// writeDistributionConfig writes the registry's config: htpasswd auth for username, or (with
// no username) client certificates of the test CA.
func writeDistributionConfig(dir, storage, addr string, certs *testCerts, username, password string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost) // checked on every request
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	secret, err := randomHex(16)
	if err != nil {
		return "", err
	}
	files := map[string][]byte{
		"htpasswd": []byte(username + ":" + string(hash) + "\n"),
		"cert.pem": certs.serverPEM,
		"key.pem":  certs.keyPEM,
		"ca.pem":   certs.caPEM,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return "", err
		}
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
  tls:
    certificate: %q
    key: %q
`, storage, addr, secret, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if username == "" {
		config += fmt.Sprintf("    clientcas:\n      - %q\n", filepath.Join(dir, "ca.pem"))
	} else {
		config += fmt.Sprintf("auth:\n  htpasswd:\n    realm: testharness\n    path: %q\n", filepath.Join(dir, "htpasswd"))
	}
	path := filepath.Join(dir, "config.yml")
	return path, os.WriteFile(path, []byte(config), 0o600)
}

// testCerts is a CA, a server certificate it signed for 127.0.0.1 and
// localhost, and a client certificate it signed, valid for a day.
type testCerts struct {
	caPEM, serverPEM, keyPEM []byte
	server                   tls.Certificate
	clientPEM, clientKeyPEM  []byte
	client                   tls.Certificate
}

func newTestCerts() (*testCerts, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testharness CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certs := &testCerts{
		caPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		serverPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER}),
		keyPEM:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	certs.server, err = tls.X509KeyPair(certs.serverPEM, certs.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading server key pair: %w", err)
	}
	if err := certs.addClient(ca, caKey); err != nil {
		return nil, err
	}
	return certs, nil
}

// addClient signs a client certificate with the CA.
func (c *testCerts) addClient(ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "testharness client"},
		NotBefore:    ca.NotBefore,
		NotAfter:     ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("signing client certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	c.clientPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	c.clientKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	c.client, err = tls.X509KeyPair(c.clientPEM, c.clientKeyPEM)
	return err
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// withoutRegistryVars drops REGISTRY_* variables, which would override the
// registry's config file.
func withoutRegistryVars(env []string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// LockedBuffer collects the output of processes, written from several goroutines.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartPlainDistribution starts Debian's docker-registry on plain HTTP with no auth over an
// existing storage directory (its data in storage/data), e.g. to read back what a registry
// running in a network namespace received.
func StartPlainDistribution(t testing.TB, storage string) *Registry {
	t.Helper()
	bin := RequireCommand(t, "docker-registry", "docker-registry")
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	config := filepath.Join(t.TempDir(), "config.yml")
	text := fmt.Sprintf("version: 0.1\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp: {addr: %s}\n", storage, addr)
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	transport := newTransport(nil)
	runDistribution(t, bin, config, "http://"+addr+"/v2/", transport)
	return &Registry{Host: addr, Insecure: true, transport: transport}
}
