package e2e

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// machines are uname -m's names of the architectures the tests build for.
var machines = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// savedTwoPlatformBase pushes twoPlatformBase and gets the whole index (format oci-layout) into
// the work dir's base/, for load_base; it returns the base's reference and the work dir.
func savedTwoPlatformBase(t *testing.T, reg *testharness.Registry) (baseRef, work string) {
	t.Helper()
	baseRef, baseDigest := twoPlatformBase(t, reg)
	work = t.TempDir()
	getInto(t, reg, "library/busybox", "1.36", baseDigest, filepath.Join(work, "base"), map[string]any{"format": "oci-layout"})
	return baseRef, work
}

// twoPlatformBase pushes an index of busybox for linux/amd64 and linux/arm64, each with its own
// architecture's binary, as library/busybox:1.36 and returns the reference and digest.
func twoPlatformBase(t *testing.T, reg *testharness.Registry) (string, v1.Hash) {
	t.Helper()
	if machines[runtime.GOARCH] == "" {
		t.Skipf("the multi-platform tests run on amd64 or arm64 machines, not %s", runtime.GOARCH)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        testharness.BusyboxImageFor(t, arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	ref := reg.Ref("library/busybox:1.36")
	return ref, reg.PushIndex(t, ref, idx)
}

// requireEmulation skips the test (fails it under CI=true) when the other of amd64 and arm64
// cannot run under QEMU here.
func requireEmulation(t *testing.T) {
	t.Helper()
	for arch, machine := range machines {
		if arch != runtime.GOARCH {
			testharness.RequireEmulation(t, machine)
		}
	}
}

// platformImages reads the index at ref and returns its images by architecture; it fails unless
// the index lists exactly archs.
func platformImages(t *testing.T, reg *testharness.Registry, ref string, mediaType types.MediaType, archs ...string) map[string]v1.Image {
	t.Helper()
	idx := reg.Index(t, ref)
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != mediaType {
		t.Errorf("index media type %s, want %s", m.MediaType, mediaType)
	}
	images := map[string]v1.Image{}
	for _, d := range m.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != d.Platform.Architecture || cfg.OS != "linux" {
			t.Errorf("index says %s, the config %s/%s", d.Platform, cfg.OS, cfg.Architecture)
		}
		images[d.Platform.Architecture] = img
	}
	if len(images) != len(archs) || len(m.Manifests) != len(archs) {
		t.Fatalf("index lists %v, want %v", m.Manifests, archs)
	}
	return images
}

// TestBuildTwoPlatforms: platforms [linux/amd64, linux/arm64] from a get of a two-platform base
// (oci-layout, the whole index): each platform builds on its own base, the arm64 RUN steps run
// under QEMU (uname -m says aarch64), TARGETPLATFORM and TARGETARCH are each platform's, and one
// index is pushed by digest, then tagged. The version is the index digest; the metadata names each
// platform's digest. A no-change rebuild with cache: true runs nothing and reads no layer.
func TestBuildTwoPlatforms(t *testing.T) {
	requireEmulation(t)
	reg := testharness.StartInProcess(t)
	baseRef, work := savedTwoPlatformBase(t, reg)
	copyContext(t, "e2e/multiarch", filepath.Join(work, "app"), nil)

	params := map[string]any{
		"build": "app", "load_base": "base", "build_args": map[string]string{"BASE": baseRef},
		"platforms": []string{"linux/amd64", "linux/arm64"}, "cache": true,
	}
	reg.ResetRequests()
	resp := put(t, work, source(reg, "team/multi"), params)

	tagged := reg.Digest(t, reg.Ref("team/multi:latest"))
	if resp.Version.Digest != tagged.String() {
		t.Fatalf("response digest %s, the tag points to %s", resp.Version.Digest, tagged)
	}
	images := platformImages(t, reg, reg.Ref("team/multi:latest"), types.OCIImageIndex, "amd64", "arm64")
	for arch, machine := range machines {
		// words.txt: busybox runs the pipeline's wc by re-executing itself as "wc": QEMU must get argv[0].
		want := map[string]string{"machine.txt": machine, "target.txt": "linux/" + arch + " " + arch, "hello.txt": "hello, platforms", "words.txt": "3"}
		files := imageFiles(t, images[arch])
		for path, content := range want {
			if got := strings.TrimSpace(files[path]); got != content {
				t.Errorf("%s: /%s = %q, want %q", arch, path, got, content)
			}
		}
		digest, _ := images[arch].Digest()
		if !hasMetadata(resp, "platform", "linux/"+arch+"@"+digest.String()) {
			t.Errorf("metadata lacks platform linux/%s@%s: %v", arch, digest, resp.Metadata)
		}
	}
	if n := requestsFor(reg, "/manifests/latest", "PUT"); n != 1 {
		t.Errorf("the tag was written %d times, want once (after everything else)", n)
	}

	// No change, cache: true: every platform hits from the previous index; nothing runs, no
	// layer is downloaded.
	reg.ResetRequests()
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "team/multi"), "params": params}, work)
	var again api.Response
	res.JSON(t, &again)
	if again.Version.Digest != resp.Version.Digest {
		t.Errorf("no-change rebuild pushed %s, want the same index %s", again.Version.Digest, resp.Version.Digest)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		got := strings.Split(metadata(again, "linux/"+arch+" cache_hits"), "/")
		if len(got) != 2 || got[0] != got[1] {
			t.Errorf("linux/%s cache_hits %q, want every step", arch, strings.Join(got, "/"))
		}
	}
	if n := strings.Count(res.Stderr, "nothing ran"); n != 2 {
		t.Errorf("%d of 2 platforms said nothing ran:\n%s", n, res.Stderr)
	}
	if n, bytes := reg.BlobDownloads(); n > 4 || bytes > 64<<10 {
		t.Errorf("the no-change rebuild downloaded %d blobs (%d bytes): want configs only", n, bytes)
	}

	// One file changed: each platform reuses its own steps up to the COPY, which alone runs.
	writeFile(t, filepath.Join(work, "app", "hello.txt"), "hello again\n")
	changed := put(t, work, source(reg, "team/multi"), params)
	images = platformImages(t, reg, reg.Ref("team/multi:latest"), types.OCIImageIndex, "amd64", "arm64")
	for arch, machine := range machines {
		if got := metadata(changed, "linux/"+arch+" cache_hits"); got != "6/7" {
			t.Errorf("linux/%s cache_hits %q after a COPY source changed, want 6/7", arch, got)
		}
		files := imageFiles(t, images[arch])
		if strings.TrimSpace(files["machine.txt"]) != machine || strings.TrimSpace(files["hello.txt"]) != "hello again" {
			t.Errorf("%s after the change: machine %q, hello %q", arch, files["machine.txt"], files["hello.txt"])
		}
	}
}

func hasMetadata(resp api.Response, name, value string) bool {
	for _, m := range resp.Metadata {
		if m.Name == name && m.Value == value {
			return true
		}
	}
	return false
}

// requestsFor counts the registry requests of method whose path ends with suffix.
func requestsFor(reg *testharness.Registry, suffix, method string) int {
	n := 0
	for _, r := range reg.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

// TestCrossCompileOnTheBuildPlatform: a stage FROM --platform=$BUILDPLATFORM runs natively for
// every target (its uname -m is the machine's), with TARGETARCH saying the target, and the
// target stage copies its output. Both platforms of the base come from one get. No RUN runs on
// the foreign platform: no emulation is needed.
func TestCrossCompileOnTheBuildPlatform(t *testing.T) {
	reg := testharness.StartInProcess(t)
	baseRef, work := savedTwoPlatformBase(t, reg)
	copyContext(t, "e2e/crossbuild", filepath.Join(work, "app"), nil)

	params := map[string]any{
		"build": "app", "load_base": "base", "build_args": map[string]string{"BASE": baseRef},
		"platforms": []string{"linux/amd64", "linux/arm64"}, "offline": true, "cache": true,
	}
	first := put(t, work, source(reg, "team/cross"), params)
	images := platformImages(t, reg, reg.Ref("team/cross:latest"), types.OCIImageIndex, "amd64", "arm64")
	for _, arch := range []string{"amd64", "arm64"} {
		want := "built for " + arch + " on linux/" + runtime.GOARCH + " by a " + machines[runtime.GOARCH] + " machine"
		if got := strings.TrimSpace(imageFiles(t, images[arch])["artifact.txt"]); got != want {
			t.Errorf("%s: /artifact.txt = %q, want %q", arch, got, want)
		}
	}

	// No change: both platforms reuse their image, the build stage included.
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "team/cross"), "params": params}, work)
	var again api.Response
	res.JSON(t, &again)
	if again.Version.Digest != first.Version.Digest || strings.Count(res.Stderr, "nothing ran") != 2 {
		t.Errorf("no-change rebuild pushed %s (first %s):\n%s", again.Version.Digest, first.Version.Digest, res.Stderr)
	}
}

// TestPlatformBasesFromSeveralGets: one get per platform (each saved with its platform param)
// gives each platform its base; a platform no get covers is pulled, or with offline: true fails in
// one line naming it. manifest_format docker pushes a docker manifest list.
func TestPlatformBasesFromSeveralGets(t *testing.T) {
	requireEmulation(t)
	reg := testharness.StartInProcess(t)
	baseRef, baseDigest := twoPlatformBase(t, reg)
	work := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		getInto(t, reg, "library/busybox", "1.36", baseDigest, filepath.Join(work, "base-"+arch), map[string]any{"platform": "linux/" + arch})
	}
	copyContext(t, "e2e/multiarch", filepath.Join(work, "app"), nil)
	params := map[string]any{
		"build": "app", "build_args": map[string]string{"BASE": baseRef}, "manifest_format": "docker",
		"platforms": []string{"linux/amd64", "linux/arm64"}, "offline": true, "load_bases": []string{"base-amd64", "base-arm64"},
	}
	reg.ResetRequests()
	put(t, work, source(reg, "team/gets"), params)
	images := platformImages(t, reg, reg.Ref("team/gets:latest"), types.DockerManifestList, "amd64", "arm64")
	for arch, machine := range machines {
		if got := strings.TrimSpace(imageFiles(t, images[arch])["machine.txt"]); got != machine {
			t.Errorf("%s: /machine.txt = %q, want %q", arch, got, machine)
		}
		if mt, _ := images[arch].MediaType(); mt != types.DockerManifestSchema2 {
			t.Errorf("%s: media type %s, want a docker manifest", arch, mt)
		}
	}
	if n := requestsFor(reg, "/library/busybox/manifests/1.36", "GET") + requestsFor(reg, "/library/busybox/manifests/"+baseDigest.String(), "GET"); n != 0 {
		t.Errorf("the base was read from the registry %d times: every platform has a get", n)
	}

	// Only the amd64 get: offline, arm64 is refused by name; online, it is pulled.
	params["load_bases"] = []string{"base-amd64"}
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "team/gets"), "params": params}, work)
	want := "params.offline: no loaded base covers " + baseRef + " (line 2) (building linux/arm64)"
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant %q", res.ExitCode, res.Stderr, want)
	}
	delete(params, "offline")
	put(t, work, source(reg, "team/gets"), params)
	images = platformImages(t, reg, reg.Ref("team/gets:latest"), types.DockerManifestList, "amd64", "arm64")
	if got := strings.TrimSpace(imageFiles(t, images["arm64"])["machine.txt"]); got != "aarch64" {
		t.Errorf("arm64 from a pulled base: /machine.txt = %q", got)
	}
}

// TestCacheMountsPerPlatform: each platform keeps its cache mount under its own tag
// (mount-<id>-<arch>) and gets back only its own on the next put.
func TestCacheMountsPerPlatform(t *testing.T) {
	requireEmulation(t)
	reg := testharness.StartInProcess(t)
	baseRef, work := savedTwoPlatformBase(t, reg)
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+baseRef+"\nARG N\n"+
		"RUN --mount=type=cache,id=seen,target=/cache sh -c 'echo \"$N $(uname -m)\" >> /cache/seen; cp /cache/seen /seen'\n")
	params := map[string]any{"build": "ctx", "load_base": "base", "cache_mounts": true, "cache_repo": reg.Host + "/cache",
		"platforms": []string{"linux/amd64", "linux/arm64"}}
	for _, n := range []string{"1", "2"} {
		params["build_args"] = map[string]string{"N": n}
		put(t, work, source(reg, "mounts"), params)
	}
	images := platformImages(t, reg, reg.Ref("mounts:latest"), types.OCIImageIndex, "amd64", "arm64")
	for arch, machine := range machines {
		want := "1 " + machine + "\n2 " + machine
		if got := strings.TrimSpace(imageFiles(t, images[arch])["seen"]); got != want {
			t.Errorf("%s: the mount held %q, want %q", arch, got, want)
		}
		reg.Digest(t, reg.Ref("cache:mount-seen-"+arch)) // fails the test when missing
	}
}

// TestOneForeignPlatform: platform: linux/<the other arch> builds that platform's image alone,
// pushed as a plain manifest (no index), its RUN under QEMU.
func TestOneForeignPlatform(t *testing.T) {
	requireEmulation(t)
	reg := testharness.StartInProcess(t)
	baseRef, work := savedTwoPlatformBase(t, reg)
	copyContext(t, "e2e/multiarch", filepath.Join(work, "app"), nil)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	resp := put(t, work, source(reg, "team/one"), map[string]any{
		"build": "app", "load_base": "base", "build_args": map[string]string{"BASE": baseRef}, "platform": "linux/" + other,
	})
	img := reg.Image(t, reg.Ref("team/one@"+resp.Version.Digest))
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("media type %s, want one OCI image", mt)
	}
	cfg, _ := img.ConfigFile()
	files := imageFiles(t, img)
	if cfg.Architecture != other || strings.TrimSpace(files["machine.txt"]) != machines[other] || strings.TrimSpace(files["target.txt"]) != "linux/"+other+" "+other {
		t.Errorf("architecture %s, machine %q, target %q; want %s", cfg.Architecture, files["machine.txt"], files["target.txt"], other)
	}
}

// TestCrossStagePulledWhenNoGetHasItsPlatform: the gets hold the target platform only; the
// FROM --platform=$BUILDPLATFORM stage's image is then pulled for the build platform (and
// refused offline, naming that platform).
func TestCrossStagePulledWhenNoGetHasItsPlatform(t *testing.T) {
	reg := testharness.StartInProcess(t)
	baseRef, baseDigest := twoPlatformBase(t, reg)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1.36", baseDigest, filepath.Join(work, "base"), map[string]any{"platform": "linux/" + other})
	copyContext(t, "e2e/crossbuild", filepath.Join(work, "app"), nil)
	params := map[string]any{
		"build": "app", "load_base": "base", "build_args": map[string]string{"BASE": baseRef},
		"platforms": []string{"linux/" + other}, "offline": true,
	}
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "team/pulled"), "params": params}, work)
	want := "params.offline: no loaded base covers " + baseRef + " (line 2) for its stage's platform linux/" + runtime.GOARCH
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, want) {
		t.Fatalf("offline: exit %d, want %q in:\n%s", res.ExitCode, want, res.Stderr)
	}
	delete(params, "offline")
	put(t, work, source(reg, "team/pulled"), params)
	images := platformImages(t, reg, reg.Ref("team/pulled:latest"), types.OCIImageIndex, other)
	want = "built for " + other + " on linux/" + runtime.GOARCH + " by a " + machines[runtime.GOARCH] + " machine"
	if got := strings.TrimSpace(imageFiles(t, images[other])["artifact.txt"]); got != want {
		t.Errorf("/artifact.txt = %q, want %q", got, want)
	}
}
