package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestCredentialsNeverShow: a registry answering wrong credentials with 401, 403 or 500 and a
// body echoing the Authorization header and the password (as JSON errors or plain text) makes
// check, in and out fail with one line naming the registry, and their whole stderr, debug on,
// shows neither the password, nor base64(username:password), nor base64(password).
func TestCredentialsNeverShow(t *testing.T) {
	img := testharness.BusyboxImage(t)
	work := t.TempDir()
	testharness.SaveOCIArchive(t, img, filepath.Join(work, "image.tar"), "app:1")
	digest, _ := img.Digest()
	for _, echo := range []testharness.Echo{
		{Status: http.StatusUnauthorized}, {Status: http.StatusForbidden, Plain: true}, {Status: http.StatusInternalServerError},
	} {
		t.Run(fmt.Sprintf("%d plain %v", echo.Status, echo.Plain), func(t *testing.T) {
			t.Parallel() // a 500 is retried for seconds
			reg := testharness.StartEcho(t, echo)
			src := source(reg, "app", "password", sentinelPassword, "debug", true)
			requests := map[string]any{
				"check": map[string]any{"source": src},
				"in":    map[string]any{"source": src, "version": api.Version{Digest: digest.String(), Tag: "latest"}},
				"out":   map[string]any{"source": src, "params": map[string]any{"image": "image.tar"}},
			}
			for _, bin := range []string{"check", "in", "out"} {
				dir := ""
				if bin != "check" {
					dir = work
				}
				reg.ResetRequests()
				res := testharness.Run(t, bin, requests[bin], dir)
				assertFailsInOneLine(t, bin, res, reg.Host)
				assertNoCredentials(t, bin, res.Stderr, reg.Username, sentinelPassword)
				assertEchoed(t, bin, reg, echo.Status)
			}
		})
	}
}

func assertFailsInOneLine(t *testing.T, bin string, res testharness.Result, host string) {
	t.Helper()
	if res.ExitCode == 0 || len(res.Stdout) != 0 {
		t.Errorf("%s: exit %d, stdout %q; want a failure and nothing on stdout", bin, res.ExitCode, res.Stdout)
	}
	lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ERROR: ") || !strings.Contains(last, host) {
		t.Errorf("%s: last line %q, want an error naming %s", bin, last, host)
	}
}

func assertNoCredentials(t *testing.T, bin, stderr, username, password string) {
	t.Helper()
	for what, leak := range map[string]string{
		"the password":                   password,
		"base64(username:password)":      base64.StdEncoding.EncodeToString([]byte(username + ":" + password)),
		"base64(password)":               base64.StdEncoding.EncodeToString([]byte(password)),
		"base64(password) without a pad": base64.RawStdEncoding.EncodeToString([]byte(password)),
	} {
		if strings.Contains(stderr, leak) {
			t.Errorf("%s: stderr shows %s:\n%s", bin, what, stderr)
		}
	}
}

// assertEchoed makes sure the registry did echo the credentials to the command.
func assertEchoed(t *testing.T, bin string, reg *testharness.Registry, status int) {
	t.Helper()
	for _, r := range reg.Requests() {
		if r.Status == status && strings.HasPrefix(r.Path, "/v2/app/") {
			return
		}
	}
	t.Errorf("%s: the registry never answered %d on /v2/app/: %+v", bin, status, reg.Requests())
}

// TestRedirectedBlobGetsNoAuthorization: a registry sending blob downloads to another port
// gets the credentials; the other port gets no Authorization header, and the get still works.
func TestRedirectedBlobGetsNoAuthorization(t *testing.T) {
	reg, blobs := testharness.StartRedirecting(t)
	img := testharness.MultiLayerImage(t, 2, 1<<10)
	digest := reg.Push(t, reg.Ref("app:1"), img)
	dir, resp := get(t, source(reg, "app", "tag", "1"), api.Version{Digest: digest.String(), Tag: "1"}, map[string]any{"format": "oci"})
	if resp.Version.Digest != digest.String() {
		t.Errorf("got version %v, want digest %s", resp.Version, digest)
	}
	assertSkopeoDigest(t, "oci-archive:"+filepath.Join(dir, "image.tar"), digest)
	auths := blobs.Authorizations()
	if len(auths) < 3 { // the config and two layers
		t.Fatalf("the blob host got %d requests, want the config and layers redirected to it", len(auths))
	}
	for i, auth := range auths {
		if auth != "" {
			t.Errorf("request %d to the blob host (%s) carried Authorization %q", i, blobs.URL, auth)
		}
	}
}

// TestEndlessConfigHitsTheLimit: a manifest declaring an 8 GB config, streamed forever, makes
// in fail with the config size limit named, instead of reading it.
func TestEndlessConfigHitsTheLimit(t *testing.T) {
	reg, digest := testharness.StartEndlessConfig(t)
	res := testharness.Run(t, "in", map[string]any{"source": source(reg, "big"), "version": api.Version{Digest: digest.String()}}, t.TempDir())
	assertFailsInOneLine(t, "in", res, reg.Host)
	want := fmt.Sprintf("config declares %d bytes, more than the limit of 32 MiB", int64(testharness.EndlessConfigSize))
	if !strings.Contains(res.Stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, res.Stderr)
	}
}

// TestRegistryTokensNeverShow: a registry echoing the bearer token its token server handed out
// (a credential the source does not hold) gets *** in the output of check, in and out.
func TestRegistryTokensNeverShow(t *testing.T) {
	img := testharness.BusyboxImage(t)
	work := t.TempDir()
	testharness.SaveOCIArchive(t, img, filepath.Join(work, "image.tar"), "app:1")
	digest, _ := img.Digest()
	reg, token := testharness.StartEchoBearer(t, testharness.Echo{Status: http.StatusForbidden})
	src := source(reg, "app", "debug", true)
	for bin, request := range map[string]any{
		"check": map[string]any{"source": src},
		"in":    map[string]any{"source": src, "version": api.Version{Digest: digest.String()}},
		"out":   map[string]any{"source": src, "params": map[string]any{"image": "image.tar"}},
	} {
		dir := work
		if bin == "check" {
			dir = ""
		}
		reg.ResetRequests()
		res := testharness.Run(t, bin, request, dir)
		assertFailsInOneLine(t, bin, res, reg.Host)
		assertNoCredentials(t, bin, res.Stderr, reg.Username, reg.Password)
		if strings.Contains(res.Stderr, token) || strings.Contains(res.Stderr, base64.StdEncoding.EncodeToString([]byte(token))) {
			t.Errorf("%s: stderr shows the registry's token %s:\n%s", bin, token, res.Stderr)
		}
		assertEchoed(t, bin, reg, http.StatusForbidden)
	}
}

// TestHugeConfigInAnIndexHitsTheLimit: a get of a whole index (oci-layout) checks the config
// of every platform's image, not only the running platform's.
func TestHugeConfigInAnIndexHitsTheLimit(t *testing.T) {
	reg := testharness.StartInProcess(t)
	small := testharness.BusyboxImage(t)
	smallDigest := reg.Push(t, reg.Ref("app:small"), small)
	smallRaw, _ := small.RawManifest()
	hugeRaw := testharness.HugeConfigManifest(t)
	hugeDigest := reg.PushRaw(t, reg.Ref("app:huge"), types.OCIManifestSchema1, hugeRaw)
	running := api.RunningPlatform()
	index, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{
		{MediaType: types.OCIManifestSchema1, Size: int64(len(smallRaw)), Digest: smallDigest, Platform: &v1.Platform{OS: running.OS, Architecture: running.Architecture}},
		{MediaType: types.OCIManifestSchema1, Size: int64(len(hugeRaw)), Digest: hugeDigest, Platform: &v1.Platform{OS: "linux", Architecture: "other"}},
	}})
	digest := reg.PushRaw(t, reg.Ref("app:1"), types.OCIImageIndex, index)
	res := testharness.Run(t, "in", map[string]any{"source": source(reg, "app"), "version": api.Version{Digest: digest.String(), Tag: "1"},
		"params": map[string]any{"format": "oci-layout"}}, t.TempDir())
	assertFailsInOneLine(t, "in", res, reg.Host)
	want := "fetch " + reg.Ref("app:1") + ": image " + hugeDigest.String() + " of the index: config declares 8589934592 bytes, more than the limit of 32 MiB"
	if !strings.Contains(res.Stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, res.Stderr)
	}
}
