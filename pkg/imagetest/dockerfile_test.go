package imagetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestPrebuiltFollowsTheDockerfile: the image the tests run is what the root Dockerfile makes: its
// binaries are built with the Dockerfile's tags and flags, and Dockerfile.prebuilt is its final
// stage (the CA bundle and /opt/resource on BASE_IMAGE).
func TestPrebuiltFollowsTheDockerfile(t *testing.T) {
	root := testharness.ModuleRoot(t)
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	full, prebuilt := read("Dockerfile"), read("dockerfiles/Dockerfile.prebuilt")
	for _, want := range []string{"-tags '" + staticTags + "'", "-ldflags '" + staticLdflags + "'", "./cmd/check ./cmd/in ./cmd/out",
		"COPY --from=builder /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
		"COPY --from=builder /opt/resource/ /opt/resource/", "ARG BASE_IMAGE=debian:bookworm-slim"} {
		if !strings.Contains(full, want) {
			t.Errorf("the Dockerfile no longer has %q: update pkg/imagetest and dockerfiles/Dockerfile.prebuilt", want)
		}
	}
	for _, want := range []string{"ARG BASE_IMAGE=debian:bookworm-slim", "FROM ${BASE_IMAGE}\n",
		"COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt", "COPY check in out /opt/resource/"} {
		if !strings.Contains(prebuilt, want) {
			t.Errorf("dockerfiles/Dockerfile.prebuilt lacks %q", want)
		}
	}
}

// TestFullDockerfileBuild builds the root Dockerfile in Docker, as a user would (with a CA passed
// as EXTRA_CA_CERTS), and runs check from it. It takes minutes (debootstrap once per machine, a
// cold compile): set IMAGETEST_FULL_BUILD=1 to run it.
func TestFullDockerfileBuild(t *testing.T) {
	if os.Getenv(fullBuildEnv) != "1" {
		t.Skipf("set %s=1 to build the root Dockerfile in Docker (minutes)", fullBuildEnv)
	}
	ca := testCA(t)
	image := buildFullResourceImage(t, ca)
	if bundle := run(t, dockerCmdTimeout, nil, "docker", "run", "--rm", "--entrypoint", "cat", image, hostCABundle); !strings.Contains(bundle, strings.TrimSpace(ca)) {
		t.Errorf("the image's CA bundle lacks the EXTRA_CA_CERTS certificate")
	}
	reg := testharness.StartInProcess(t)
	digest := reg.Push(t, reg.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	want := api.Version{Digest: digest.String(), Tag: "1"}
	if versions := check(t, image, source(reg, "library/busybox", "tag", "1")); len(versions) != 1 || versions[0] != want {
		t.Errorf("check: %+v, want [%+v]", versions, want)
	}
}

// testCA is a self-signed CA certificate in PEM.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imagetest extra CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
