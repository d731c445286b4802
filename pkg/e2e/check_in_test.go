package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

func TestCheckReportsTheTagsDigest(t *testing.T) {
	for kind, reg := range registries(t) {
		t.Run(kind, func(t *testing.T) {
			digest := reg.Push(t, reg.Ref("app:1.0"), testharness.BusyboxImage(t))
			got := check(t, source(reg, "app", "tag", "1.0"), nil)
			want := []api.Version{{Digest: digest.String(), Tag: "1.0"}}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("check = %v, want %v", got, want)
			}
			if got := check(t, source(reg, "app", "tag", "missing"), nil); len(got) != 0 {
				t.Fatalf("missing tag: %v, want []", got)
			}
			if got := check(t, source(reg, "no-such-repo"), nil); len(got) != 0 {
				t.Fatalf("missing repository: %v, want []", got)
			}
		})
	}
}

func TestCheckIndexDigestIsTheVersion(t *testing.T) {
	reg := testharness.StartInProcess(t)
	digest := reg.PushIndex(t, reg.Ref("multi:latest"), testharness.TwoPlatformIndex(t))
	got := check(t, source(reg, "multi"), nil)
	if len(got) != 1 || got[0].Digest != digest.String() {
		t.Fatalf("check = %v, want the index digest %s", got, digest)
	}
}

func TestCheckSemverAndRegexModes(t *testing.T) {
	reg := testharness.StartInProcess(t)
	base := testharness.BusyboxImage(t)
	digests := map[string]string{}
	for i, tag := range []string{"1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "latest", "1.2.0-alpine"} {
		img := testharness.MultiLayerImage(t, 1, int64(100+i))
		if tag == "latest" {
			img = base
		}
		digests[tag] = reg.Push(t, reg.Ref("app:"+tag), img).String()
	}
	got := check(t, source(reg, "app", "semver_constraint", ">= 1.1"), nil)
	assertTags(t, got, digests, "1.2.0", "1.10.0")

	got = check(t, source(reg, "app", "semver_constraint", ">= 1", "pre_releases", true), api.Version{Tag: "1.2.0", Digest: digests["1.2.0"]})
	assertTags(t, got, digests, "1.2.0", "1.10.0", "2.0.0-rc.1")

	got = check(t, source(reg, "app", "semver_constraint", ">= 1", "variant", "alpine"), nil)
	assertTags(t, got, digests, "1.2.0-alpine")

	got = check(t, source(reg, "app", "tag_regex", `1\.[0-9]+\.0`), nil)
	assertTags(t, got, digests, "1.0.0", "1.2.0", "1.10.0")
}

func assertTags(t *testing.T, got []api.Version, digests map[string]string, tags ...string) {
	t.Helper()
	var want []api.Version
	for _, tag := range tags {
		want = append(want, api.Version{Tag: tag, Digest: digests[tag]})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("check = %v\nwant %v", got, want)
	}
}

func TestInWritesEveryFormat(t *testing.T) {
	for kind, reg := range registries(t) {
		t.Run(kind, func(t *testing.T) {
			img := testharness.MultiLayerImage(t, 2, 1<<20)
			digest := reg.Push(t, reg.Ref("app:1.0"), img)
			version := api.Version{Digest: digest.String(), Tag: "1.0"}
			src := source(reg, "app", "tag", "1.0")
			configDigest, _ := img.ConfigName()

			dir, resp := get(t, src, version, map[string]any{"format": "oci"})
			if resp.Version != version || metadata(resp, "digest") != digest.String() {
				t.Fatalf("response %+v", resp)
			}
			for file, want := range map[string]string{
				"repository": reg.Host + "/app", "tag": "1.0", "digest": digest.String(), "image-id": configDigest.String(), "labels.json": "{}",
			} {
				if got := readFile(t, filepath.Join(dir, file)); got != want {
					t.Errorf("%s = %q, want %q", file, got, want)
				}
			}
			assertSkopeoDigest(t, "oci-archive:"+filepath.Join(dir, "image.tar"), digest)

			// docker-image-resource's save and rootfs next to the OCI archive, fetched once.
			reg.ResetRequests()
			dir, _ = get(t, src, version, map[string]any{"save": true, "rootfs": true})
			if n, _ := reg.BlobDownloads(); n != 4 { // config + busybox layer + 2 layers, each once
				t.Errorf("blob downloads = %d, want 4 (each blob once)", n)
			}
			saved, err := tarball.ImageFromPath(filepath.Join(dir, "image"), nil)
			if err != nil {
				t.Fatalf("docker archive: %v", err)
			}
			if got, _ := saved.ConfigName(); got != configDigest {
				t.Errorf("docker archive config %s, want %s", got, configDigest)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "rootfs/data/layer-2.bin")); err != nil || len(data) != 1<<20 {
				t.Errorf("rootfs layer file: %d bytes, %v", len(data), err)
			}
			if _, err := os.Stat(filepath.Join(dir, "metadata.json")); err != nil {
				t.Error(err)
			}

			dir, _ = get(t, src, version, map[string]any{"skip_download": true})
			if _, err := os.Stat(filepath.Join(dir, "image.tar")); !os.IsNotExist(err) {
				t.Error("skip_download wrote image.tar")
			}
			if readFile(t, filepath.Join(dir, "digest")) != digest.String() {
				t.Error("skip_download must still write digest")
			}
		})
	}
}

func TestInPlatformsOfAnIndex(t *testing.T) {
	reg := testharness.StartInProcess(t)
	idx := testharness.TwoPlatformIndex(t)
	digest := reg.PushIndex(t, reg.Ref("multi:latest"), idx)
	version := api.Version{Digest: digest.String(), Tag: "latest"}

	reg.ResetRequests()
	dir, _ := get(t, source(reg, "multi"), version, map[string]any{"format": "oci-layout"})
	assertEachBlobOnce(t, reg)
	kept, err := layout.ImageIndexFromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := kept.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digest {
		t.Fatalf("oci/ index.json lists %v, want the index %s", im.Manifests, digest)
	}

	dir, _ = get(t, source(reg, "multi"), version, map[string]any{"platform": "linux/arm64", "format": "rootfs"})
	if got := readFile(t, filepath.Join(dir, "rootfs/platform")); got != "linux/arm64" {
		t.Fatalf("rootfs of linux/arm64 has /platform = %q", got)
	}
}

// assertEachBlobOnce: no blob was downloaded twice since reg's requests were last reset.
func assertEachBlobOnce(t *testing.T, reg *testharness.Registry) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range reg.Requests() {
		if r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") {
			seen[r.Path]++
		}
	}
	for path, n := range seen {
		if n != 1 {
			t.Errorf("%s downloaded %d times, want once", path, n)
		}
	}
}

func assertSkopeoDigest(t *testing.T, ref string, want v1.Hash) {
	t.Helper()
	testharness.RequireCommand(t, "skopeo", "skopeo")
	out, err := exec.Command("skopeo", "inspect", "--format", "{{.Digest}}", ref).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != want.String() {
		t.Fatalf("skopeo inspect %s: %s %v, want %s", ref, out, err, want)
	}
}

// TestCheckPingsOnce: check with tag_regex resolves every matching tag through one connection
// set-up: one /v2/ ping for the run, not one per tag.
func TestCheckPingsOnce(t *testing.T) {
	for name, reg := range registries(t) {
		t.Run(name, func(t *testing.T) {
			img := testharness.BusyboxImage(t)
			for _, tag := range []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0"} {
				reg.Push(t, reg.Ref("pinged:"+tag), img)
			}
			reg.ResetRequests()
			if versions := check(t, source(reg, "pinged", "tag_regex", `1\..*`), nil); len(versions) != 3 {
				t.Fatalf("%d versions, want 3", len(versions))
			}
			pings := 0
			for _, r := range reg.Requests() {
				if r.Path == "/v2/" {
					pings++
				}
			}
			if pings != 1 {
				t.Fatalf("%d /v2/ pings for one check, want 1", pings)
			}
		})
	}
}
