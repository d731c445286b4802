package testharness

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// registryKinds starts one registry of each kind for a test.
func registryKinds(t *testing.T) map[string]*Registry {
	return map[string]*Registry{
		"in-process":   StartInProcess(t),
		"distribution": StartDistribution(t),
	}
}

func TestGeneratorsRoundTrip(t *testing.T) {
	for kind, reg := range registryKinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Run("busybox", func(t *testing.T) {
				ref := reg.Ref("test/busybox:1")
				pushed := reg.Push(t, ref, BusyboxImage(t))
				roundTripImage(t, reg, ref, pushed.String())
			})
			t.Run("multi-layer", func(t *testing.T) {
				ref := reg.Ref("test/multi:1")
				pushed := reg.Push(t, ref, MultiLayerImage(t, 2, 64<<10))
				roundTripImage(t, reg, ref, pushed.String())
			})
			t.Run("two-platform-index", func(t *testing.T) {
				ref := reg.Ref("test/index:1")
				idx := TwoPlatformIndex(t)
				pushed := reg.PushIndex(t, ref, idx)
				if got := reg.Digest(t, ref); got != pushed {
					t.Fatalf("registry has %s, pushed %s", got, pushed)
				}
				manifest, err := idx.IndexManifest()
				if err != nil {
					t.Fatal(err)
				}
				for _, desc := range manifest.Manifests {
					roundTripImage(t, reg, reg.Ref("test/index@"+desc.Digest.String()), desc.Digest.String())
				}
			})
		})
	}
}

func roundTripImage(t *testing.T, reg *Registry, ref, want string) {
	t.Helper()
	if got := reg.Digest(t, ref); got.String() != want {
		t.Fatalf("registry has %s for %s, pushed %s", got, ref, want)
	}
	img := reg.Image(t, ref)
	checkImage(t, img)
	if got := digest(t, img); got.String() != want {
		t.Fatalf("read back %s, pushed %s", got, want)
	}
}

func TestRecorderCountsBlobTransfers(t *testing.T) {
	const size = 256 << 10
	for kind, reg := range registryKinds(t) {
		t.Run(kind, func(t *testing.T) {
			img := MultiLayerImage(t, 1, size)
			reg.Push(t, reg.Ref("test/recorded:1"), img)
			count, bytes := reg.BlobUploads()
			if count != 3 || bytes < size {
				t.Errorf("first push: %d uploads of %d bytes, want busybox layer + data layer + config, over %d bytes", count, bytes, size)
			}

			reg.ResetRequests()
			reg.Push(t, reg.Ref("test/recorded:2"), img)
			if count, bytes := reg.BlobUploads(); count != 0 || bytes != 0 {
				t.Errorf("second push: %d uploads of %d bytes, want none (blobs exist)", count, bytes)
			}
			if len(reg.Requests()) == 0 {
				t.Error("no requests recorded for the second push")
			}

			reg.ResetRequests()
			pullBlobs(t, reg.Image(t, reg.Ref("test/recorded:2")))
			count, bytes = reg.BlobDownloads()
			if count != 3 || bytes < size {
				t.Errorf("read back: %d downloads of %d bytes, want 3 over %d bytes", count, bytes, size)
			}
		})
	}
}

// pullBlobs reads the config and each compressed layer once.
func pullBlobs(t *testing.T, img v1.Image) {
	t.Helper()
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range layers {
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestDistributionRequiresAuthAndTLS(t *testing.T) {
	reg := StartDistribution(t)
	ref := reg.Ref("test/busybox:1")
	reg.Push(t, ref, BusyboxImage(t))

	for name, user := range map[string][2]string{
		"wrong password": {reg.Username, "wrong"},
		"anonymous":      {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			other := &Registry{Host: reg.Host, Username: user[0], Password: user[1], transport: reg.transport}
			_, err := remote.Head(other.parse(t, ref), other.remoteOptions()...)
			var terr *transport.Error
			if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %v, want a 401", err)
			}
		})
	}

	t.Run("plain HTTP", func(t *testing.T) {
		resp, err := http.Get("http://" + reg.Host + "/v2/")
		if err != nil {
			return // the TLS listener closed the connection
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP answered %s, want 400 (client sent an HTTP request to an HTTPS server)", resp.Status)
		}
	})
}

func TestSource(t *testing.T) {
	if got := StartInProcess(t).Source(); len(got) != 1 || got["insecure"] != true {
		t.Errorf("in-process source %v, want insecure only", got)
	}
	reg := StartDistribution(t)
	got := reg.Source()
	cas, _ := got["ca_certs"].([]string)
	if got["username"] != DistributionUsername || got["password"] != reg.Password || len(cas) != 1 ||
		!strings.Contains(cas[0], "BEGIN CERTIFICATE") || got["insecure"] != nil {
		t.Errorf("distribution source %v", got)
	}
}

// TestSkopeoCopiesThroughRegistries checks that containers/image (what
// buildah uses) can push through each registry's recorder, using the
// credentials and CA the harness hands out, and that the OCI archive
// written by SaveOCIArchive is what it reads.
func TestSkopeoCopiesThroughRegistries(t *testing.T) {
	skopeo := RequireCommand(t, "skopeo", "skopeo")
	img := BusyboxImage(t)
	archive := filepath.Join(t.TempDir(), "busybox.tar")
	SaveOCIArchive(t, img, archive, "busybox:1")

	for kind, reg := range registryKinds(t) {
		t.Run(kind, func(t *testing.T) {
			args := []string{"--insecure-policy", "copy", "--retry-times=0"}
			if reg.Insecure {
				args = append(args, "--dest-tls-verify=false")
			} else {
				certDir := t.TempDir()
				if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), []byte(reg.CACertPEM), 0o644); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--dest-cert-dir", certDir, "--dest-creds", reg.Username+":"+reg.Password)
			}
			ref := reg.Ref("skopeo/busybox:1")
			args = append(args, "oci-archive:"+archive+":busybox:1", "docker://"+ref)
			cmd := exec.Command(skopeo, args...)
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if got, want := reg.Digest(t, ref), digest(t, img); got != want {
				t.Errorf("registry has %s, archive holds %s", got, want)
			}
			if count, _ := reg.BlobUploads(); count != 2 {
				t.Errorf("%d blob uploads, want layer + config", count)
			}
		})
	}
}
