package e2e

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestCacheMountsSurviveFreshWorkers: a RUN whose cache mount downloads a package only when the
// cache is empty. Each out run has empty storage (a fresh worker); after the first, the mount
// comes back from the registry, so the package server is asked once in all.
func TestCacheMountsSurviveFreshWorkers(t *testing.T) {
	var fetches atomic.Int64
	pkgServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(200 * time.Millisecond) // a slow mirror
		w.Write([]byte(strings.Repeat("package bytes\n", 1000)))
	}))
	defer pkgServer.Close()

	reg := testharness.StartInProcess(t)
	baseDigest := reg.Push(t, reg.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1", baseDigest, filepath.Join(work, "base"), nil)
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\n"+
		"ARG VERSION=1\n"+
		"RUN echo \"version $VERSION\" > /version\n"+
		"RUN --mount=type=cache,id=pkgs,target=/var/cache/pkgs sh -c 'test -f /var/cache/pkgs/pkg || wget -q -O /var/cache/pkgs/pkg "+pkgServer.URL+"/pkg; cp /var/cache/pkgs/pkg /installed'\n")
	build := func(version string, extra map[string]any) testharness.Result {
		params := map[string]any{"build": "ctx", "load_base": "base", "cache_mounts": true, "cache_repo": reg.Host + "/cache",
			"build_args": map[string]string{"VERSION": version}}
		for k, v := range extra {
			params[k] = v
		}
		res := testharness.Run(t, "out", map[string]any{"source": source(reg, "app"), "params": params}, work)
		var resp api.Response
		res.JSON(t, &resp)
		files := imageFiles(t, reg.Image(t, reg.Ref("app@"+resp.Version.Digest)))
		if !strings.HasPrefix(files["installed"], "package bytes") || strings.TrimSpace(files["version"]) != "version "+version {
			t.Fatalf("version %s: /installed %d bytes, /version %q", version, len(files["installed"]), files["version"])
		}
		return res
	}

	first := build("1", nil)
	if fetches.Load() != 1 || !strings.Contains(first.Stderr, "cache mount pkgs: saved") {
		t.Fatalf("first build: %d fetches\n%s", fetches.Load(), first.Stderr)
	}
	if n := mountPushes(reg); n != 1 {
		t.Fatalf("first build pushed the mount %d times, want 1", n)
	}
	mountDigest := reg.Digest(t, reg.Ref("cache:mount-pkgs"))

	// A new version invalidates the cached step; the mount comes back and the content is the same.
	reg.ResetRequests()
	second := build("2", nil)
	if fetches.Load() != 1 {
		t.Fatalf("the package was downloaded again (%d fetches)\n%s", fetches.Load(), second.Stderr)
	}
	if !strings.Contains(second.Stderr, "cache mount pkgs: restored") || !strings.Contains(second.Stderr, "cache mount pkgs: unchanged, not pushed") {
		t.Errorf("second build log:\n%s", second.Stderr)
	}
	if n := mountPushes(reg); n != 0 {
		t.Errorf("unchanged cache content was pushed again (%d manifests)", n)
	}

	// The same artifact through a get: no registry read of the cache repository is needed.
	saved := filepath.Join(work, "mount-get")
	getInto(t, reg, "cache", "mount-pkgs", mountDigest, saved, nil)
	third := build("3", map[string]any{"cache_mounts_from": []string{"mount-get"}})
	if fetches.Load() != 1 || !strings.Contains(third.Stderr, "cache mount pkgs: restored") || !strings.Contains(third.Stderr, "from a get") {
		t.Errorf("cache_mounts_from: %d fetches\n%s", fetches.Load(), third.Stderr)
	}

	// A saved mount larger than cache_mounts_max_size is not restored either: the RUN downloads.
	fourth := build("4", map[string]any{"cache_mounts_from": []string{"mount-get"}, "cache_mounts_max_size": 100})
	if fetches.Load() != 2 || !strings.Contains(fourth.Stderr, "cache mount pkgs: a get is larger than cache_mounts_max_size") {
		t.Errorf("over the bound: %d fetches\n%s", fetches.Load(), fourth.Stderr)
	}
}

// TestCacheMountOverTheBoundIsNotSaved: the build succeeds, the mount is not pushed.
func TestCacheMountOverTheBoundIsNotSaved(t *testing.T) {
	reg := testharness.StartInProcess(t)
	baseDigest := reg.Push(t, reg.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1", baseDigest, filepath.Join(work, "base"), nil)
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("library/busybox:1")+"\n"+
		"RUN --mount=type=cache,target=/cache dd if=/dev/zero of=/cache/big bs=1024 count=64 && echo done > /done\n")
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "app"), "params": map[string]any{
		"build": "ctx", "load_base": "base", "cache_mounts": []string{"/cache"}, "cache_repo": reg.Host + "/cache", "cache_mounts_max_size": "10KB",
	}}, work)
	var resp api.Response
	res.JSON(t, &resp)
	if !strings.Contains(res.Stderr, "cache mount /cache:") || !strings.Contains(res.Stderr, "not saved") {
		t.Fatalf("log:\n%s", res.Stderr)
	}
	if n := mountPushes(reg); n != 0 {
		t.Fatalf("an over-bound mount was pushed (%d manifests)", n)
	}
}

// mountPushes counts the cache mount manifests the registry received.
func mountPushes(reg *testharness.Registry) int {
	n := 0
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/v2/cache/manifests/mount-") {
			n++
		}
	}
	return n
}
