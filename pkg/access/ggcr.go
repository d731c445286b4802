package access

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Resolve makes the policy an authn.Keychain for go-containerregistry: the credential of the
// resource's registry, anonymous when it has none.
func (p *Policy) Resolve(resource authn.Resource) (authn.Authenticator, error) {
	c, ok := p.Credential(resource.RegistryStr())
	if !ok {
		return authn.Anonymous, nil
	}
	return &authn.Basic{Username: c.Username, Password: c.Password}, nil
}

// RemoteAuth is the go-containerregistry option sending each registry its own credentials.
func (p *Policy) RemoteAuth() remote.Option { return remote.WithAuthFromKeychain(p) }

// NameOptions parse a reference of host: name.Insecure (HTTP allowed) when host is insecure.
func (p *Policy) NameOptions(host string) []name.Option {
	if p.Insecure(host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Repository parses a repository with the name options of its registry.
func (p *Policy) Repository(repository string) (name.Repository, error) {
	repo, err := name.NewRepository(repository)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parse repository %q: %w", repository, err)
	}
	if p.Insecure(repo.RegistryStr()) {
		return name.NewRepository(repository, name.Insecure)
	}
	return repo, nil
}

// TLSConfig is the TLS configuration for host: the system roots plus the CA certificates for it,
// its client certificate, and no verification only when it is insecure (then the system roots,
// which nothing would read, are not loaded: that takes a get's start 10-20 ms).
func (p *Policy) TLSConfig(host string) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !p.Insecure(host) {
		if system, err := x509.SystemCertPool(); err == nil && system != nil {
			pool = system
		}
	}
	for i, pemText := range p.CACerts(host) {
		if !pool.AppendCertsFromPEM([]byte(pemText)) {
			return nil, fmt.Errorf("source.ca_certs: certificate %d for %s: expected a PEM certificate", i, Normalize(host))
		}
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, InsecureSkipVerify: p.Insecure(host)} //nolint:gosec // only for registries the user marked insecure
	if c, ok := p.ClientCert(host); ok {
		pair, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
		if err != nil {
			return nil, fmt.Errorf("source.client_certs (domain %s): expected a PEM certificate and key", c.Domain)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Transport is an HTTP transport for host with its TLS configuration.
func (p *Policy) Transport(host string) (*http.Transport, error) {
	cfg, err := p.TLSConfig(host)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return tr, nil
}
