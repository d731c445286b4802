package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// The app context (testdata/cache/app) has 8 steps; every RUN writes random bytes, so a step
// that ran again can never give the same layer.
const (
	stepFrom        = "STEP 1/8: FROM "
	stepDeps        = "STEP 2/8: COPY deps.txt /deps.txt"
	stepRandom      = "STEP 3/8: RUN head -c 64 /dev/urandom > /random && date +%s%N > /built-at"
	stepVersion     = `STEP 5/8: RUN echo "version $VERSION" > /version && head -c 16 /dev/urandom > /random-version`
	stepSources     = "STEP 6/8: COPY src/ /app/"
	stepAll         = "STEP 7/8: RUN cat /app/*.txt > /app/all && head -c 16 /dev/urandom > /app/random-all"
	maxMetadataRead = 10 << 10 // what a no-change rebuild may read: manifests and a config
)

// TestCacheAcrossFreshWorkers: every out run has its own empty storage, as a fresh Concourse
// worker. With cache: true, an unchanged rebuild runs nothing and moves no layer; a late source
// change reruns that step and the next only, uploading their layers alone; a build arg change
// misses from the RUN that has it in scope, with the reason.
func TestCacheAcrossFreshWorkers(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	baseRef := saveBase(t, reg, filepath.Join(work, "base"))
	copyContext(t, "cache/app", filepath.Join(work, "app"), nil)
	params := map[string]any{"build": "app", "load_base": "base", "cache": true, "build_args": map[string]string{"BASE": baseRef}}
	src := source(reg, "app")

	// A cold build on an empty registry: no cache image, a warning, the build goes on.
	cold := putCached(t, work, src, params)
	if !strings.Contains(cold.stderr, "cache: "+reg.Ref("app:latest")+": no image there, building without it") {
		t.Errorf("no warning about the missing cache image")
	}
	if got := metadata(cold.resp, "cache_hits"); got != "0/8" {
		t.Errorf("cold cache_hits = %q", got)
	}
	coldImage := reg.Image(t, reg.Ref("app@"+cold.resp.Version.Digest))
	coldLayers := layerDigests(t, coldImage)

	t.Run("unchanged", func(t *testing.T) {
		reg.ResetRequests()
		res := putCached(t, work, src, params)
		if res.resp.Version.Digest != cold.resp.Version.Digest {
			t.Fatalf("digest %s, the first build's is %s", res.resp.Version.Digest, cold.resp.Version.Digest)
		}
		for _, step := range []string{stepFrom, stepDeps, stepRandom, stepVersion, stepSources, stepAll, "STEP 8/8: CMD"} {
			assertStepLine(t, res.stderr, step, "cache hit (from "+reg.Ref("app:latest")+")")
		}
		if strings.Contains(res.stderr, "COMMIT") || strings.Contains(res.stderr, "--> ") {
			t.Error("buildah ran")
		}
		assertNoLayerMoved(t, reg, coldLayers)
		if got := metadata(res.resp, "cache_hits"); got != "8/8" || metadata(res.resp, "cache_source") != reg.Ref("app:latest") {
			t.Errorf("cache_hits %q, cache_source %q", got, metadata(res.resp, "cache_source"))
		}
	})

	t.Run("a label param", func(t *testing.T) {
		reg.ResetRequests()
		res := putCached(t, work, src, withParam(params, "labels", map[string]string{"org.example.commit": "abc"}))
		assertStepLine(t, res.stderr, stepAll, "cache hit")
		if res.resp.Version.Digest == cold.resp.Version.Digest {
			t.Fatal("same digest: the label is not in the image")
		}
		if n, size := reg.BlobUploads(); n != 1 || size > maxMetadataRead {
			t.Errorf("%d blobs (%d bytes) uploaded, want only the new config", n, size)
		}
		for _, d := range downloadedBlobs(reg) {
			if slices.Contains(coldLayers, d) {
				t.Errorf("layer %s was downloaded", d)
			}
		}
		img := reg.Image(t, reg.Ref("app@"+res.resp.Version.Digest))
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.Labels["org.example.commit"] != "abc" || !slices.Equal(layerDigests(t, img), coldLayers) {
			t.Errorf("labels %v, layers %v", cfg.Config.Labels, layerDigests(t, img))
		}
	})

	t.Run("a source file copied late", func(t *testing.T) {
		writeFile(t, filepath.Join(work, "app/src/hello.txt"), "hello again\n")
		reg.ResetRequests()
		res := putCached(t, work, src, params)
		assertStepLine(t, res.stderr, stepVersion, "cache hit")
		assertStepLine(t, res.stderr, stepSources, "cache miss: src/hello.txt changed")
		assertStepLine(t, res.stderr, stepAll, "cache miss: follows the miss at step 6")
		// The registry received the two new layers and the config, and served only the
		// layers of the reused steps (the base came from load_base).
		if n, _ := reg.BlobUploads(); n != 3 {
			t.Errorf("%d blob uploads, want 3 (two layers and the config)", n)
		}
		for _, d := range downloadedBlobs(reg) {
			if d == coldLayers[0] || d == coldLayers[4] || d == coldLayers[5] {
				t.Errorf("layer %s was downloaded; only the deps, random and version layers are needed", d)
			}
		}
		img := reg.Image(t, reg.Ref("app@"+res.resp.Version.Digest))
		layers := layerDigests(t, img)
		if !slices.Equal(layers[:4], coldLayers[:4]) || slices.Contains(coldLayers, layers[4]) || slices.Contains(coldLayers, layers[5]) {
			t.Errorf("layers:\n%v\nthe first build's:\n%v\nwant the first four reused, the last two new", layers, coldLayers)
		}
		if files := imageFiles(t, img); files["app/all"] != "hello again\nworld\n" {
			t.Errorf("/app/all = %q", files["app/all"])
		}
		if got := metadata(res.resp, "cache_hits"); got != "5/8" || !strings.Contains(metadata(res.resp, "cache_first_miss"), "src/hello.txt changed") {
			t.Errorf("cache_hits %q, cache_first_miss %q", got, metadata(res.resp, "cache_first_miss"))
		}
		coldLayers = layers
	})

	t.Run("a build arg of one RUN", func(t *testing.T) {
		params["build_args"] = map[string]string{"BASE": baseRef, "VERSION": "2"}
		res := putCached(t, work, src, params)
		assertStepLine(t, res.stderr, "STEP 4/8: ARG VERSION=1", "cache hit")
		assertStepLine(t, res.stderr, stepVersion, "cache miss: build arg VERSION changed")
		layers := layerDigests(t, reg.Image(t, reg.Ref("app@"+res.resp.Version.Digest)))
		if !slices.Equal(layers[:3], coldLayers[:3]) || layers[3] == coldLayers[3] {
			t.Errorf("layers:\n%v\nbefore:\n%v\nwant the first three reused, the version layer new", layers, coldLayers)
		}
		if !strings.Contains(metadata(res.resp, "cache_first_miss"), "build arg VERSION changed") {
			t.Errorf("cache_first_miss %q", metadata(res.resp, "cache_first_miss"))
		}
	})
}

// TestCacheFromAGetDirectoryOffline: the cache image is a get's image.tar and the network is cut
// (a network namespace with only loopback and an empty registry to push to): every step hits and
// the pushed image is the cache image.
func TestCacheFromAGetDirectoryOffline(t *testing.T) {
	testharness.RequireCommand(t, "unshare", "util-linux")
	testharness.RequireCommand(t, "ip", "iproute2")
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	baseRef := saveBase(t, reg, filepath.Join(work, "base"))
	copyContext(t, "cache/app", filepath.Join(work, "app"), nil)
	buildArgs := map[string]string{"BASE": baseRef}
	first := putCached(t, work, source(reg, "app"), map[string]any{"build": "app", "load_base": "base", "build_args": buildArgs})
	getInto(t, reg, "app", "latest", mustHash(t, first.resp.Version.Digest), filepath.Join(work, "cache"), nil)

	resp, log := outOffline(t, work, t.TempDir(), map[string]any{"build": "app", "load_base": "base", "offline": true, "cache_from": []string{"cache"}, "build_args": buildArgs})
	assertStepLine(t, log, stepRandom, "cache hit (from cache)")
	if resp.Version.Digest != first.resp.Version.Digest {
		t.Errorf("pushed %s, the cache image is %s", resp.Version.Digest, first.resp.Version.Digest)
	}
}

// TestCacheFromReferences: of two references the first has no image (a warning) and the second
// serves; pushed to another repository of the registry, the layers are mounted, not uploaded.
// A docker-built image is reported unusable and the build goes on.
func TestCacheFromReferences(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	baseRef := saveBase(t, reg, filepath.Join(work, "base"))
	copyContext(t, "cache/app", filepath.Join(work, "app"), nil)
	buildArgs := map[string]string{"BASE": baseRef}
	first := putCached(t, work, source(reg, "team/app"), map[string]any{"build": "app", "load_base": "base", "build_args": buildArgs})

	reg.ResetRequests()
	missing, good := reg.Ref("team/app:missing"), reg.Ref("team/app:latest")
	res := putCached(t, work, source(reg, "other/app"), map[string]any{
		"build": "app", "load_base": "base", "build_args": buildArgs, "cache_from": []string{missing, good},
	})
	if !strings.Contains(res.stderr, "cache: "+missing+": no image there") {
		t.Error("no warning about the missing first reference")
	}
	assertStepLine(t, res.stderr, stepAll, "cache hit (from "+good+")")
	if res.resp.Version.Digest != first.resp.Version.Digest || metadata(res.resp, "cache_source") != good {
		t.Errorf("digest %s (want %s), cache_source %q", res.resp.Version.Digest, first.resp.Version.Digest, metadata(res.resp, "cache_source"))
	}
	assertNoLayerMoved(t, reg, layerDigests(t, reg.Image(t, good)))

	// An image docker built: docker's history, no cache keys.
	base := testharness.BusyboxImage(t)
	legacy, err := mutate.Append(base, mutate.Addendum{Layer: layerOf(t, reg, good, 1), History: v1.History{CreatedBy: "/bin/sh -c #(nop) COPY file:0123abcd in /deps.txt "}})
	if err != nil {
		t.Fatal(err)
	}
	legacyRef := reg.Ref("legacy/app:1")
	reg.Push(t, legacyRef, legacy)
	res = putCached(t, work, source(reg, "team/app"), map[string]any{
		"build": "app", "load_base": "base", "build_args": map[string]string{"BASE": baseRef, "VERSION": "3"}, "cache_from": []string{legacyRef},
	})
	if !strings.Contains(res.stderr, "cache: "+legacyRef+": unusable: the image was built by another tool") {
		t.Error("the docker-built image is not reported unusable")
	}
	if files := imageFiles(t, reg.Image(t, reg.Ref("team/app@"+res.resp.Version.Digest))); files["version"] != "version 3\n" {
		t.Errorf("/version = %q", files["version"])
	}
}

// TestCacheRepoServesTheBuilderStage: with cache_repo, a fresh worker's build of a changed final
// stage gets the builder stage's steps from the per-step cache images: its RUN does not run
// again (its random output is the same).
func TestCacheRepoServesTheBuilderStage(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	baseRef := saveBase(t, reg, filepath.Join(work, "base"))
	copyContext(t, "cache/multistage", filepath.Join(work, "ms"), nil)
	params := map[string]any{"build": "ms", "load_base": "base", "cache": true, "cache_repo": reg.Ref("ms-cache"), "build_args": map[string]string{"BASE": baseRef}}
	first := putCached(t, work, source(reg, "ms"), params)
	before := imageFiles(t, reg.Image(t, reg.Ref("ms@"+first.resp.Version.Digest)))

	writeFile(t, filepath.Join(work, "ms/app.txt"), "app v2\n")
	res := putCached(t, work, source(reg, "ms"), params)
	if !regexp.MustCompile(`\[1/2\] STEP 3/3: RUN head -c 32 /dev/urandom > /out.bin\n(--> Cache pulled from remote .*\n)?--> Using cache`).MatchString(res.stderr) {
		t.Error("the builder stage's RUN did not hit the cache")
	}
	assertStepLine(t, res.stderr, "[2/2] STEP 3/4: COPY app.txt /app.txt", "cache miss: app.txt changed")
	after := imageFiles(t, reg.Image(t, reg.Ref("ms@"+res.resp.Version.Digest)))
	if after["out.bin"] != before["out.bin"] || after["app.txt"] != "app v2\n" {
		t.Errorf("out.bin same: %t, app.txt %q", after["out.bin"] == before["out.bin"], after["app.txt"])
	}
}

// withParam is a copy of params with one more.
func withParam(params map[string]any, key string, value any) map[string]any {
	out := map[string]any{key: value}
	for k, v := range params {
		if k != key {
			out[k] = v
		}
	}
	return out
}

type cachedPut struct {
	resp   api.Response
	stderr string
}

func putCached(t *testing.T, work string, src, params map[string]any) cachedPut {
	t.Helper()
	res := testharness.Run(t, "out", map[string]any{"source": src, "params": params}, work)
	var resp api.Response
	res.JSON(t, &resp)
	return cachedPut{resp: resp, stderr: res.Stderr}
}

// saveBase saves busybox as a get of <registry>/library/busybox:1.36 would, and returns the
// reference; the registry does not have it.
func saveBase(t *testing.T, reg *testharness.Registry, dir string) string {
	t.Helper()
	testharness.SaveOCIArchive(t, testharness.BusyboxImage(t), filepath.Join(mkdir(t, dir), "image.tar"), "")
	writeFile(t, filepath.Join(dir, "repository"), reg.Host+"/library/busybox")
	writeFile(t, filepath.Join(dir, "tag"), "1.36")
	return reg.Ref("library/busybox:1.36")
}

// assertStepLine checks that the report has the step's line with the verdict.
func assertStepLine(t *testing.T, stderr, step, verdict string) {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, step) && strings.Contains(line, " — ") {
			if !strings.Contains(line, " — "+verdict) {
				t.Errorf("report line %q, want %q", line, verdict)
			}
			return
		}
	}
	t.Errorf("no report line for %q", step)
}

// assertNoLayerMoved checks that the registry served none of the layers and received no blob
// upload, and that what it served (manifests aside) is small.
func assertNoLayerMoved(t *testing.T, reg *testharness.Registry, layers []v1.Hash) {
	t.Helper()
	for _, d := range downloadedBlobs(reg) {
		if slices.Contains(layers, d) {
			t.Errorf("layer %s was downloaded", d)
		}
	}
	if _, n := reg.BlobDownloads(); n > maxMetadataRead {
		t.Errorf("%d blob bytes downloaded", n)
	}
	if n, size := reg.BlobUploads(); n != 0 {
		t.Errorf("%d blobs (%d bytes) uploaded", n, size)
	}
}

func downloadedBlobs(reg *testharness.Registry) []v1.Hash {
	var blobs []v1.Hash
	for _, r := range reg.Requests() {
		if _, digest, ok := strings.Cut(r.Path, "/blobs/"); ok && r.Method == "GET" && r.Status == 200 {
			if h, err := v1.NewHash(digest); err == nil {
				blobs = append(blobs, h)
			}
		}
	}
	return blobs
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	for _, l := range m.Layers {
		digests = append(digests, l.Digest)
	}
	return digests
}

func layerOf(t *testing.T, reg *testharness.Registry, ref string, i int) v1.Layer {
	t.Helper()
	layers, err := reg.Image(t, ref).Layers()
	if err != nil {
		t.Fatal(err)
	}
	return layers[i]
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCacheFromACorruptGet: a late source change makes the build read the cache image's early
// layers, and one was damaged on disk: that is reported, the build runs every step and pushes
// the right content.
func TestCacheFromACorruptGet(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	baseRef := saveBase(t, reg, filepath.Join(work, "base"))
	copyContext(t, "cache/app", filepath.Join(work, "app"), nil)
	params := map[string]any{"build": "app", "load_base": "base", "build_args": map[string]string{"BASE": baseRef}}
	first := putCached(t, work, source(reg, "app"), params)
	getInto(t, reg, "app", "latest", mustHash(t, first.resp.Version.Digest), filepath.Join(work, "cache"), nil)
	layers := layerDigests(t, reg.Image(t, reg.Ref("app@"+first.resp.Version.Digest)))
	flipByteOfBlob(t, filepath.Join(work, "cache/image.tar"), layers[1])
	writeFile(t, filepath.Join(work, "app/src/hello.txt"), "hello again\n")

	params["cache_from"] = []string{"cache"}
	res := putCached(t, work, source(reg, "app"), params)
	if !strings.Contains(res.stderr, "WARNING: cache: ") {
		t.Errorf("no warning names the damaged cache image:\n%s", res.stderr)
	}
	if got := metadata(res.resp, "cache_hits"); got != "0/8" {
		t.Errorf("cache_hits = %q, want 0/8", got)
	}
	if files := imageFiles(t, reg.Image(t, reg.Ref("app@"+res.resp.Version.Digest))); files["app/all"] != "hello again\nworld\n" {
		t.Errorf("/app/all = %q", files["app/all"])
	}
}

// flipByteOfBlob changes one byte of blob digest's content inside the tar at path.
func flipByteOfBlob(t *testing.T, path string, digest v1.Hash) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header := bytes.Index(data, []byte("blobs/sha256/"+digest.Hex))
	if header < 0 {
		t.Fatalf("%s holds no blob %s", path, digest)
	}
	data[header-header%512+512+20] ^= 0xff // 20 bytes into the content that follows the header block
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
