package access

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containers/image/v5/pkg/sysregistriesv2"
	ctypes "github.com/containers/image/v5/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

func mustNew(t *testing.T, src api.Source) *Policy {
	t.Helper()
	p, err := New(context.Background(), src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io": "docker.io", "index.docker.io": "docker.io", "registry-1.docker.io": "docker.io",
		"https://index.docker.io/v1/": "docker.io", "Registry.Example.com:5000": "registry.example.com:5000",
		"http://127.0.0.1:5000/": "127.0.0.1:5000",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCredentialsPerHost: each host gets its own credentials only, whatever its spelling; the
// source's win over additional_private_registries, which win over docker_config_json.
func TestCredentialsPerHost(t *testing.T) {
	dockerConfig := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("hub:hubpw:with:colons")) +
		`"},"cfg.example:443":{"username":"_json_key","password":"{\n \"private_key\": \"x\"\n}"},"reg.example:5000":{"auth":"` +
		base64.StdEncoding.EncodeToString([]byte("cfguser:cfgpw")) + `"}}}`
	p := mustNew(t, api.Source{
		Repository: "reg.example:5000/app", Username: "src", Password: "srcpw",
		PrivateRegs: []api.Private{
			{Registry: "other.example", Username: "o1", Password: "p1"},
			{Registry: "reg.example:5000", Username: "never", Password: "never"},
			{Registry: "other.example", Username: "o2", Password: "p2"},
		},
		RegistryMirror:   &api.Mirror{Host: "mirror.example", Username: "m", Password: "mpw"},
		DockerConfigJSON: dockerConfig,
	})
	for host, want := range map[string]Credential{
		"reg.example:5000":     {"src", "srcpw", "source.username/password"},
		"other.example":        {"o1", "p1", "additional_private_registries[0]"},
		"mirror.example":       {"m", "mpw", "registry_mirror"},
		"index.docker.io":      {"hub", "hubpw:with:colons", `docker_config_json auths["https://index.docker.io/v1/"]`},
		"registry-1.docker.io": {"hub", "hubpw:with:colons", `docker_config_json auths["https://index.docker.io/v1/"]`},
		"cfg.example:443":      {"_json_key", "{\n \"private_key\": \"x\"\n}", `docker_config_json auths["cfg.example:443"]`},
	} {
		if got, ok := p.Credential(host); !ok || got != want {
			t.Errorf("Credential(%s) = %+v, %v; want %+v", host, got, ok, want)
		}
	}
	for _, host := range []string{"reg.example", "reg.example:5001", "localhost:5000", "elsewhere.example"} {
		if got, ok := p.Credential(host); ok {
			t.Errorf("Credential(%s) = %+v, want none", host, got)
		}
	}
	repo, _ := name.NewRepository("other.example/x")
	auth, err := p.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := auth.Authorization(); cfg.Username != "o1" || cfg.Password != "p1" {
		t.Errorf("keychain for other.example = %+v", cfg)
	}
	repo, _ = name.NewRepository("anon.example/x")
	if auth, _ := p.Resolve(repo); auth != authn.Anonymous {
		t.Errorf("keychain for anon.example = %v, want anonymous", auth)
	}
	if got := p.Tried("other.example"); got != "with the credentials of additional_private_registries[0]" {
		t.Errorf("Tried = %q", got)
	}
}

// TestInsecure: insecure marks the source's registry and mirror, insecure_registries hosts and
// CIDR ranges match exactly those.
func TestInsecure(t *testing.T) {
	p := mustNew(t, api.Source{
		Repository: "reg.example:5000/app", Insecure: true, RegistryMirror: &api.Mirror{Host: "mirror.example"},
		InsecureRegistries: []string{"10.0.0.0/8", "plain.example:5000", "fd00::/8"},
	})
	for host, want := range map[string]bool{
		"reg.example:5000": true, "mirror.example": true, "10.1.2.3:5000": true, "10.1.2.3": true,
		"plain.example:5000": true, "[fd00::1]:5000": true,
		"reg.example": false, "11.0.0.1:5000": false, "plain.example": false, "docker.io": false,
	} {
		if got := p.Insecure(host); got != want {
			t.Errorf("Insecure(%s) = %v, want %v", host, got, want)
		}
	}
	if _, err := New(context.Background(), api.Source{Repository: "r", InsecureRegistries: []string{"10.0.0.0/33"}}, Options{}); err == nil ||
		!strings.HasPrefix(err.Error(), "source.insecure_registries[0]: ") {
		t.Errorf("bad CIDR: %v", err)
	}
}

// TestContainersFiles: the auth file holds the hosts' own credentials, registries.conf their
// insecure flags and the mirror (as containers/image reads it), certs.d the CA for every host
// and a domain's CA and client certificate for that host only.
func TestContainersFiles(t *testing.T) {
	ca, cert, key := testCertificates(t)
	p := mustNew(t, api.Source{
		Repository: "registry.local:5000/app", Username: "me", Password: "pw",
		InsecureRegistries: []string{"registry.local:5000"},
		RegistryMirror:     &api.Mirror{Host: "mirror.local:5001", Username: "m", Password: "mpw"},
		CACerts:            []api.CACert{{Cert: ca}, {Domain: "tls.local", Cert: cert}},
		ClientCerts:        []api.ClientCert{{Domain: "tls.local", Cert: cert, Key: key}},
	})
	dir := t.TempDir()
	files, err := p.WriteContainersFiles(dir, []string{"docker.io", "registry.local:5000", "tls.local"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(files.AuthFile)
	if want := `{"auths":{"mirror.local:5001":{"auth":"bTptcHc="},"registry.local:5000":{"auth":"bWU6cHc="}}}`; string(data) != want {
		t.Errorf("auth.json = %s, want %s", data, want)
	}
	if fi, _ := os.Stat(files.AuthFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("auth.json mode %v", fi.Mode())
	}
	sys := &ctypes.SystemContext{SystemRegistriesConfPath: files.RegistriesConf, SystemRegistriesConfDirPath: t.TempDir()}
	reg, err := sysregistriesv2.FindRegistry(sys, "docker.io/library/busybox:latest")
	if err != nil || reg == nil || len(reg.Mirrors) != 1 || reg.Mirrors[0].Location != "mirror.local:5001" || reg.Mirrors[0].Insecure {
		t.Errorf("docker.io registry = %+v, %v", reg, err)
	}
	if reg, err := sysregistriesv2.FindRegistry(sys, "registry.local:5000/app:1"); err != nil || reg == nil || !reg.Insecure {
		t.Errorf("registry.local:5000 = %+v, %v", reg, err)
	}
	for path, want := range map[string]string{
		"registry.local:5000/ca.crt": ca, "docker.io/ca.crt": ca, "registry-1.docker.io/ca.crt": ca,
		"tls.local/ca.crt": ca + "\n" + cert, "tls.local/client.cert": cert, "tls.local/client.key": key,
		"registry.local:5000/client.cert": "",
	} {
		got, _ := os.ReadFile(filepath.Join(files.CertsDir, path))
		if strings.TrimSpace(string(got)) != strings.TrimSpace(want) {
			t.Errorf("certs.d/%s = %q, want %q", path, got, want)
		}
	}
}

// TestTLSConfig: a domain's CA and client certificate serve that host only.
func TestTLSConfig(t *testing.T) {
	ca, cert, key := testCertificates(t)
	p := mustNew(t, api.Source{
		Repository: "r.example/app", InsecureRegistries: []string{"insecure.example"},
		CACerts:     []api.CACert{{Domain: "tls.local", Cert: ca}},
		ClientCerts: []api.ClientCert{{Domain: "tls.local", Cert: cert, Key: key}},
	})
	mtls, err := p.TLSConfig("tls.local")
	if err != nil || len(mtls.Certificates) != 1 || mtls.InsecureSkipVerify {
		t.Fatalf("tls.local: %+v, %v", mtls, err)
	}
	other, err := p.TLSConfig("r.example")
	if err != nil || len(other.Certificates) != 0 || other.InsecureSkipVerify {
		t.Fatalf("r.example: %+v, %v", other, err)
	}
	if cfg, _ := p.TLSConfig("insecure.example"); !cfg.InsecureSkipVerify {
		t.Error("insecure.example is verified")
	}
}

// TestDockerHubIsOneRegistry: credentials given for any of Docker Hub's names reach both
// clients: go-containerregistry (index.docker.io) and containers/image (docker.io).
func TestDockerHubIsOneRegistry(t *testing.T) {
	for _, spelling := range []string{"docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"} {
		p := mustNew(t, api.Source{Repository: "registry.example/app",
			PrivateRegs: []api.Private{{Registry: spelling, Username: "hub", Password: "hubpw"}}})
		repo, _ := name.NewRepository("library/busybox")
		auth, _ := p.Resolve(repo)
		if cfg, err := auth.Authorization(); err != nil || cfg.Username != "hub" {
			t.Errorf("%s: keychain for %s = %+v, %v", spelling, repo.RegistryStr(), cfg, err)
		}
		files, err := p.WriteContainersFiles(t.TempDir(), []string{"docker.io"})
		if err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(files.AuthFile); string(data) != `{"auths":{"docker.io":{"auth":"aHViOmh1YnB3"}}}` {
			t.Errorf("%s: auth.json = %s", spelling, data)
		}
	}
}

// TestExplain: a refusal inside the build names the registry and what was sent to it.
func TestExplain(t *testing.T) {
	p := mustNew(t, api.Source{Repository: "r.example/app",
		PrivateRegs: []api.Private{{Registry: "other.example:5000", Username: "u", Password: "p"}}})
	err := p.Explain(fmt.Errorf(`creating build container: initializing source docker://other.example:5000/lib/base:1: reading manifest 1 in other.example:5000/lib/base: unauthorized: authentication required`))
	if want := "(other.example:5000: refused, with the credentials of additional_private_registries[0])"; !strings.HasSuffix(err.Error(), want) {
		t.Errorf("Explain = %v, want the suffix %q", err, want)
	}
	plain := fmt.Errorf("pinging container registry docker://x.example/: connection refused")
	if got := p.Explain(plain); got != plain {
		t.Errorf("Explain(%v) = %v", plain, got)
	}
}
