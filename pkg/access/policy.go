// Package access is the resource's one registry-access policy. It is built once from the source
// and answers, for each registry host, every question a request to it raises: which credentials
// (and from which source field), which CA roots, which client certificate, whether it may be
// plain HTTP or unverified TLS, and which mirror serves Docker Hub. Host names are normalised
// first, so docker.io, index.docker.io and registry-1.docker.io are one registry.
//
// The policy renders itself for both registry clients of the resource: go-containerregistry
// (an authn.Keychain and a per-registry transport, for check, in, push and cache lookups) and
// containers/image inside buildah (an auth file, a registries.conf and a certs.d directory, for
// FROM pulls, cache seeding and cache_repo). No other package decides credentials, TLS or
// mirrors; a test fails if one tries.
//
// Credentials of one host are never given to another: the source's username and password go to
// the repository's registry only, additional_private_registries and docker_config_json entries
// to the registry they name, registry_mirror's to the mirror, the ECR token to the repository's
// registry.
package access

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

// Credential is a username and password for one registry, with the source field it comes from.
type Credential struct {
	Username, Password string
	Origin             string // e.g. "additional_private_registries[1]"
}

// Options are what the policy needs from its process.
type Options struct {
	// Hide is told every credential the policy makes, e.g. an ECR token, before it is used.
	Hide func(secrets ...string)
}

// Policy is the registry-access policy of one source. It holds no state that changes after New.
type Policy struct {
	source       string // normalised host of the source's repository
	creds        map[string]Credential
	globalCAs    []string            // ca_certs without a domain: trusted for every registry
	domainCAs    map[string][]string // ca_certs with a domain
	clientCerts  map[string]api.ClientCert
	insecure     map[string]bool
	insecureNets []*net.IPNet
	mirror       string // Docker Hub's mirror, "" for none
}

// New builds the policy of a decoded source. With aws_* fields it asks ECR for a token.
func New(ctx context.Context, src api.Source, opts Options) (*Policy, error) {
	repo, err := name.NewRepository(src.Repository)
	if err != nil {
		return nil, fmt.Errorf("source.repository: %w", err)
	}
	p := &Policy{
		source:      Normalize(repo.RegistryStr()),
		creds:       map[string]Credential{},
		domainCAs:   map[string][]string{},
		clientCerts: map[string]api.ClientCert{},
		insecure:    map[string]bool{},
	}
	if err := p.addCredentials(ctx, src, opts); err != nil {
		return nil, err
	}
	p.addTrust(src)
	if err := p.addInsecure(src); err != nil {
		return nil, err
	}
	return p, nil
}

// Anonymous is the policy of no credentials, the system's roots and nothing insecure.
func Anonymous() *Policy {
	return &Policy{creds: map[string]Credential{}, domainCAs: map[string][]string{},
		clientCerts: map[string]api.ClientCert{}, insecure: map[string]bool{}}
}

// Normalize is the one spelling of a registry host: lower case, no scheme or path, and docker.io
// for Docker Hub's names (index.docker.io, registry-1.docker.io, registry.hub.docker.com).
func Normalize(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host, _, _ = strings.Cut(host, "/")
	switch host {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io":
		return "docker.io"
	}
	return host
}

// addCredentials fills creds, lowest precedence first: docker_config_json, registry_mirror,
// additional_private_registries (the first entry for a host wins), the source's own.
func (p *Policy) addCredentials(ctx context.Context, src api.Source, opts Options) error {
	if src.DockerConfigJSON != "" {
		if err := p.addDockerConfig(src.DockerConfigJSON); err != nil {
			return err
		}
	}
	if m := src.RegistryMirror; m != nil && m.Username != "" {
		p.creds[Normalize(m.Host)] = Credential{Username: m.Username, Password: m.Password, Origin: "registry_mirror"}
	}
	for i := len(src.PrivateRegs) - 1; i >= 0; i-- {
		r := src.PrivateRegs[i]
		if r.Username != "" {
			p.creds[Normalize(r.Registry)] = Credential{Username: r.Username, Password: r.Password, Origin: fmt.Sprintf("additional_private_registries[%d]", i)}
		}
	}
	switch {
	case src.Username != "":
		p.creds[p.source] = Credential{Username: src.Username, Password: src.Password, Origin: "source.username/password"}
	case src.UsesECR():
		cred, err := ecrCredential(ctx, src, p.source)
		if err != nil {
			return err
		}
		if opts.Hide != nil {
			opts.Hide(cred.Password, cred.Username+":"+cred.Password)
		}
		p.creds[p.source] = cred
	}
	return nil
}

func (p *Policy) addTrust(src api.Source) {
	for _, c := range src.CACerts {
		if c.Domain == "" {
			p.globalCAs = append(p.globalCAs, c.Cert)
		} else {
			host := Normalize(c.Domain)
			p.domainCAs[host] = append(p.domainCAs[host], c.Cert)
		}
	}
	for _, c := range src.ClientCerts {
		p.clientCerts[Normalize(c.Domain)] = c
	}
	if m := src.RegistryMirror; m != nil {
		p.mirror = Normalize(m.Host)
	}
}

// addInsecure marks the source's registry (and its mirror) with insecure: true, and each
// insecure_registries entry: a host[:port], or a CIDR range matching registries named by IP.
func (p *Policy) addInsecure(src api.Source) error {
	if src.Insecure {
		p.insecure[p.source] = true
		if p.mirror != "" {
			p.insecure[p.mirror] = true
		}
	}
	for i, entry := range src.InsecureRegistries {
		if strings.Contains(entry, "/") && !strings.Contains(entry, "://") {
			_, ipNet, err := net.ParseCIDR(entry)
			if err != nil {
				return fmt.Errorf("source.insecure_registries[%d]: expected host[:port] or a CIDR range such as 10.0.0.0/8: %w", i, err)
			}
			p.insecureNets = append(p.insecureNets, ipNet)
			continue
		}
		p.insecure[Normalize(entry)] = true
	}
	return nil
}

// Credential is what is sent to host, and false when nothing is (anonymous).
func (p *Policy) Credential(host string) (Credential, bool) {
	c, ok := p.creds[Normalize(host)]
	return c, ok
}

// Tried says what was sent to host, for an error: "with the credentials of X" or "anonymously".
func (p *Policy) Tried(host string) string {
	if c, ok := p.Credential(host); ok {
		return "with the credentials of " + c.Origin
	}
	return "anonymously (no credentials configured for it)"
}

// Insecure reports whether host may be plain HTTP or TLS without verification.
func (p *Policy) Insecure(host string) bool {
	host = Normalize(host)
	if p.insecure[host] {
		return true
	}
	ip := net.ParseIP(strings.Trim(hostOnly(host), "[]"))
	for _, n := range p.insecureNets {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// CACerts are the PEM roots trusted for host besides the system's.
func (p *Policy) CACerts(host string) []string {
	return append(append([]string{}, p.globalCAs...), p.domainCAs[Normalize(host)]...)
}

// ClientCert is the client certificate presented to host, if any.
func (p *Policy) ClientCert(host string) (api.ClientCert, bool) {
	c, ok := p.clientCerts[Normalize(host)]
	return c, ok
}

// Mirror is the host of Docker Hub's mirror, "" for none.
func (p *Policy) Mirror() string { return p.mirror }

// SourceHost is the normalised registry host of the source's repository.
func (p *Policy) SourceHost() string { return p.source }

func hostOnly(hostPort string) string {
	if h, _, err := net.SplitHostPort(hostPort); err == nil {
		return h
	}
	return hostPort
}
