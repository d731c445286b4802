package imagetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/imagetest/resourceimage"
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
	for _, want := range []string{"-tags '" + resourceimage.StaticTags + "'", "-ldflags '" + resourceimage.StaticLdflags + "'", "./cmd/check ./cmd/in ./cmd/out",
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
	image := buildFullResourceImage(t, testCA)
	if bundle := run(t, dockerCmdTimeout, nil, "docker", "run", "--rm", "--network", "none", "--entrypoint", "cat", image, hostCABundle); !strings.Contains(bundle, strings.TrimSpace(testCA)) {
		t.Errorf("the image's CA bundle lacks the EXTRA_CA_CERTS certificate")
	}
	reg := testharness.StartInProcess(t)
	digest := reg.Push(t, reg.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	want := api.Version{Digest: digest.String(), Tag: "1"}
	if versions := check(t, image, source(reg, "library/busybox", "tag", "1")); len(versions) != 1 || versions[0] != want {
		t.Errorf("check: %+v, want [%+v]", versions, want)
	}
}

// testCA is a self-signed CA certificate (its key thrown away), fixed so that the builder stage's
// cache survives from one run to the next.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBvzCCAWWgAwIBAgIUYC6M3MlMX15Wrec+L8wTCqiyZe0wCgYIKoZIzj0EAwIw
NDEyMDAGA1UEAwwpYnVpbGRhaC1pbWFnZS1yZXNvdXJjZSBpbWFnZXRlc3QgZXh0
cmEgQ0EwIBcNMjYxMjAyMDI1NjM4WhgPMjEyNjExMDgwMjU2MzhaMDQxMjAwBgNV
BAMMKWJ1aWxkYWgtaW1hZ2UtcmVzb3VyY2UgaW1hZ2V0ZXN0IGV4dHJhIENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2SIZaAOg3O4P8iqKktOvaMI2HLj18Dz/
PfXpn0Jk25pbYvbFyYiFl0olEZeU4ZXe0mVmjXV9fHRxIMWnAiVSSKNTMFEwHQYD
VR0OBBYEFB8OydhyETwEe9UySf1hawKesIGjMB8GA1UdIwQYMBaAFB8OydhyETwE
e9UySf1hawKesIGjMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIh
AIF8hl+IKF6wstkR8l3lTo135R7cx6AbAGvRH4482d8pAiAq6j96u1slxs2Pdj4V
eF2EIotaS08kwejuAoVTtfYajQ==
-----END CERTIFICATE-----
`
