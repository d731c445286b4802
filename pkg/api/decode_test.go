package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestDecodeNamesTheField(t *testing.T) {
	cases := []struct {
		name, request, want string
		decode              func(string) error
	}{
		{"not JSON", `{"source":`, "request: expected a JSON object: not valid JSON", check},
		{"null", `null`, "request: expected a JSON object, got null", check},
		{"unknown top-level", `{"source":{"repository":"r"},"extra":1}`, "extra: unknown field", check},
		{"missing repository", `{"source":{}}`, "source.repository: required", check},
		{"repository wrong type", `{"source":{"repository":{}}}`, "source.repository: expected a string, got object", check},
		{"bad repository", `{"source":{"repository":"UPPER/Case"}}`, "source.repository: expected a repository", check},
		{"unknown source key", `{"source":{"repository":"r","colour":"red"}}`, "source.colour: unknown field", check},
		{"unsupported source key", `{"source":{"repository":"r","aws_ecr_registry_id":"1"}}`, "source.aws_ecr_registry_id: not supported yet", check},
		{"empty tag", `{"source":{"repository":"r","tag":""}}`, "source.tag: expected a tag", check},
		{"bad tag", `{"source":{"repository":"r","tag":"a b"}}`, "source.tag: expected a tag", check},
		{"bad regex", `{"source":{"repository":"r","tag_regex":"("}}`, "source.tag_regex: expected a regular expression", check},
		{"bad semver", `{"source":{"repository":"r","semver_constraint":">>1"}}`, "source.semver_constraint: expected a semver constraint", check},
		{"username alone", `{"source":{"repository":"r","username":"u"}}`, "source.password: required when source.username is set", check},
		{"bad ca cert", `{"source":{"repository":"r","ca_certs":["nope"]}}`, "source.ca_certs[0]: expected a PEM certificate", check},
		{"ca cert wrong type", `{"source":{"repository":"r","ca_certs":[5]}}`, "source.ca_certs: expected PEM strings", check},
		{"debug wrong type", `{"source":{"repository":"r","debug":"yes"}}`, `source.debug: expected true or false, got "yes"`, check},
		{"mirror without host", `{"source":{"repository":"r","registry_mirror":{"username":"u"}}}`, "source.registry_mirror.host: required", check},
		{"private registry without name", `{"source":{"repository":"r","additional_private_registries":[{"username":"u"}]}}`, "source.additional_private_registries[0].registry: required", check},
		{"in version missing", `{"source":{"repository":"r"}}`, "version.digest: expected sha256:", in},
		{"in bad format", `{"source":{"repository":"r"},"version":{"digest":"sha256:` + strings.Repeat("a", 64) + `"},"params":{"format":"zip"}}`, "params.format: expected oci, oci-layout or rootfs", in},
		{"in bad platform", `{"source":{"repository":"r"},"version":{"digest":"sha256:` + strings.Repeat("a", 64) + `"},"params":{"platform":"linux"}}`, "params.platform: expected os/architecture", in},
		{"out nothing to push", `{"source":{"repository":"r"},"params":{}}`, "params: one of build, image, load, load_file or import_file is required", out},
		{"out two sources", `{"source":{"repository":"r"},"params":{"build":"a","image":"b"}}`, "params.image: cannot be combined with params.build", out},
		{"out unknown param", `{"source":{"repository":"r"},"params":{"build":"a","bild_args":{}}}`, "params.bild_args: unknown field", out},
		{"out build_args not a map", `{"source":{"repository":"r"},"params":{"build":"a","build_args":["A=1"]}}`, "params.build_args: expected an object of strings", out},
		{"out foreign platform", `{"source":{"repository":"r"},"params":{"build":"a","platform":"plan9/mips"}}`, "params.platform: expected a linux platform", out},
		{"out platform without build", `{"source":{"repository":"r"},"params":{"image":"a.tar","platform":"linux/s390x"}}`, "params.platform: only a build can be for another platform", out},
		{"out empty platforms", `{"source":{"repository":"r"},"params":{"build":"a","platforms":[]}}`, "params.platforms: expected at least one platform", out},
		{"out bad platforms item", `{"source":{"repository":"r"},"params":{"build":"a","platforms":["linux/amd64","arm64"]}}`, "params.platforms[1]: expected os/architecture", out},
		{"out platforms twice", `{"source":{"repository":"r"},"params":{"build":"a","platforms":["linux/arm64","linux/arm64"]}}`, "params.platforms[1]: linux/arm64 is listed twice", out},
		{"out platforms not linux", `{"source":{"repository":"r"},"params":{"build":"a","platforms":["windows/amd64"]}}`, "params.platforms[0]: expected a linux platform", out},
		{"out platforms and platform", `{"source":{"repository":"r"},"params":{"build":"a","platform":"` + RunningPlatform().String() + `","platforms":["linux/arm64"]}}`, "params.platforms: cannot be combined with params.platform", out},
		{"out platforms without build", `{"source":{"repository":"r"},"params":{"image":"a.tar","platforms":["linux/arm64"]}}`, "params.platforms: needs params.build", out},
		{"out bad manifest format", `{"source":{"repository":"r"},"params":{"build":"a","manifest_format":"v1"}}`, "params.manifest_format: expected oci or docker", out},
		{"out secret with both", `{"source":{"repository":"r"},"params":{"build":"a","secrets":{"s":{"env":"A","source":"b"}}}}`, "params.secrets.s: expected exactly one of env or source", out},
		{"out bad cache_ttl", `{"source":{"repository":"r"},"params":{"build":"a","cache_ttl":"a week"}}`, "params.cache_ttl: expected a duration", out},
		{"out cache_mounts without a repo", `{"source":{"repository":"r"},"params":{"build":"a","cache_mounts":true}}`, "params.cache_mounts: needs params.cache_repo", out},
		{"out cache_mounts wrong type", `{"source":{"repository":"r"},"params":{"build":"a","cache_mounts":"yes"}}`, "params.cache_mounts: expected true or a list", out},
		{"out bad max size", `{"source":{"repository":"r"},"params":{"build":"a","cache_mounts_max_size":"huge"}}`, "params.cache_mounts_max_size: expected a size", out},
		{"out unsupported", `{"source":{"repository":"r"},"params":{"build":"a","content_trust":{}}}`, "params.content_trust: not supported yet", out},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.decode(c.request)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("got %v, want prefix %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestCacheMountParams(t *testing.T) {
	req, err := DecodeOut(strings.NewReader(`{"source":{"repository":"r"},"params":{"build":"a","cache_repo":"r/cache","cache_mounts":["pip"],"cache_mounts_max_size":"1.5GiB"}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := req.Params
	if !p.CacheMounts.Keeps("pip") || p.CacheMounts.Keeps("apt") || *p.CacheMountsMaxSize != ByteSize(1.5*(1<<30)) {
		t.Fatalf("cache mounts %+v, max %d", p.CacheMounts, *p.CacheMountsMaxSize)
	}
	req, _ = DecodeOut(strings.NewReader(`{"source":{"repository":"r"},"params":{"build":"a","cache_repo":"r/c","cache_mounts":true,"cache_mounts_max_size":1000}}`))
	if !req.Params.CacheMounts.Keeps("anything") || *req.Params.CacheMountsMaxSize != 1000 {
		t.Fatalf("cache_mounts: true keeps every mount: %+v", req.Params.CacheMounts)
	}
}

func check(s string) error { _, err := DecodeCheck(strings.NewReader(s)); return err }
func in(s string) error    { _, err := DecodeIn(strings.NewReader(s)); return err }
func out(s string) error   { _, err := DecodeOut(strings.NewReader(s)); return err }

func TestDecodeAcceptsBothResourcesForms(t *testing.T) {
	req, err := DecodeOut(strings.NewReader(`{"source":{"repository":"r","registry_mirror":"https://mirror.example.com/",
		"ca_certs":[{"domain":"r.example.com","cert":"` + selfSignedPEM(t) + `"}]},
		"params":{"build":"src","tag":"version/number","target":"app","platform":{"os":"` + RunningPlatform().OS + `","architecture":"` + RunningPlatform().Architecture + `"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.Source.RegistryMirror.Host != "mirror.example.com" {
		t.Errorf("mirror host %q", req.Source.RegistryMirror.Host)
	}
	if req.Source.CACerts[0].Domain != "r.example.com" {
		t.Errorf("ca cert domain %q", req.Source.CACerts[0].Domain)
	}
	if req.Params.TagFile != "version/number" {
		t.Errorf("docker-image-resource's tag param should become tag_file, got %q", req.Params.TagFile)
	}
	if req.Params.TargetStage() != "app" {
		t.Errorf("target %q", req.Params.TargetStage())
	}
	if req.Source.TagOrDefault() != "latest" {
		t.Errorf("default tag %q", req.Source.TagOrDefault())
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"source":{"repository":"r","tag":"1"},"version":{"digest":"sha256:` + strings.Repeat("a", 64) + `"}}`)
	f.Add(`{"source":{"repository":"r","ca_certs":[{"domain":"d","cert":"x"}]},"params":{"build":"b","platform":"linux/amd64"}}`)
	f.Add(`{"source":{"repository":"r","registry_mirror":"http://m"},"params":{"tag":"t"}}`)
	f.Add(`{"source":null}`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, decode := range []func(string) error{check, in, out} {
			if err := decode(s); err != nil && strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		}
	})
}

// selfSignedPEM makes a CA certificate for the tests, JSON-escaped.
func selfSignedPEM(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	text := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return strings.ReplaceAll(text, "\n", `\n`)
}
