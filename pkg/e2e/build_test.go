package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestBuildFromALoadedBase: a single-stage build with ARG before FROM, build args, labels and a
// secret, on the TLS + basic auth registry. The base comes from a get: its layer is reused as is
// and not uploaded again, and the image holds what the Dockerfile says.
func TestBuildFromALoadedBase(t *testing.T) {
	reg := testharness.StartDistribution(t)
	base := testharness.BusyboxImage(t)
	baseRef := reg.Ref("library/busybox:1.36")
	baseDigest := reg.Push(t, baseRef, base)
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1.36", baseDigest, filepath.Join(work, "base"), nil)
	copyContext(t, "e2e/app", filepath.Join(work, "app"), nil)

	reg.ResetRequests()
	const token = "t0ken-that-must-not-leak"
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "team/app"), "params": map[string]any{
		"build": "app", "load_base": "base", "tag_as_latest": true,
		"build_args": map[string]string{"BASE": baseRef, "GREETING": "hi from $BUILD_PIPELINE_NAME"},
		"labels":     map[string]string{"org.example.commit": "abc123"},
		"secrets":    map[string]any{"token": map[string]string{"env": "SECRET_TOKEN"}},
	}}, work, "SECRET_TOKEN="+token)
	var resp api.Response
	res.JSON(t, &resp)

	if got := reg.Digest(t, reg.Ref("team/app:latest")); resp.Version.Digest != got.String() {
		t.Fatalf("response digest %s, registry has %s", resp.Version.Digest, got)
	}
	img := reg.Image(t, reg.Ref("team/app:latest"))
	files := imageFiles(t, img)
	for path, want := range map[string]string{
		"greeting.txt": "hi from pipeline", "app/hello.txt": "hello, world", "token-length": "24",
	} {
		if got := strings.TrimSpace(files[path]); got != want {
			t.Errorf("/%s = %q, want %q", path, got, want)
		}
	}
	cfg, _ := img.ConfigFile()
	for key, want := range map[string]string{
		"org.example.team": "builders", "org.example.commit": "abc123",
		"org.opencontainers.image.base.name": baseRef, "org.opencontainers.image.base.digest": baseDigest.String(),
	} {
		if got := cfg.Config.Labels[key]; got != want {
			t.Errorf("label %s = %q, want %q", key, got, want)
		}
	}
	if !contains(cfg.Config.Env, "APP_HOME=/app") || strings.Join(cfg.Config.Entrypoint, " ") != "cat" || strings.Join(cfg.Config.Cmd, " ") != "/app/hello.txt" {
		t.Errorf("config env %v entrypoint %v cmd %v", cfg.Config.Env, cfg.Config.Entrypoint, cfg.Config.Cmd)
	}
	if !historyMentions(cfg, `echo "$GREETING" > /greeting.txt`) {
		t.Errorf("history lacks the RUN step: %+v", cfg.History)
	}

	// The base layer is the base's own compressed blob, and the registry did not receive it again.
	baseLayers, _ := base.Layers()
	builtLayers, _ := img.Layers()
	baseLayerDigest, _ := baseLayers[0].Digest()
	baseLayerSize, _ := baseLayers[0].Size()
	if got, _ := builtLayers[0].Digest(); got != baseLayerDigest {
		t.Errorf("first layer %s, want the base's %s", got, baseLayerDigest)
	}
	_, uploaded := reg.BlobUploads()
	if uploaded >= baseLayerSize {
		t.Errorf("uploaded %d bytes, the base layer alone is %d: it was sent again", uploaded, baseLayerSize)
	}
	// The log says what was really sent, not the image's size.
	if want := "uploaded " + progress.Size(uploaded) + ", the registry had the rest"; !strings.Contains(res.Stderr, want) {
		t.Errorf("the log does not say %q:\n%s", want, res.Stderr)
	}

	// The secret is in no layer, no history entry and no log.
	assertNowhere(t, token, img, res)
}

// TestBuildMultiStageTargetsAndArgsFile: stages, COPY --from, target, a build args file, and a
// base saved the way docker-image-resource saves it (save: true).
func TestBuildMultiStageTargetsAndArgsFile(t *testing.T) {
	reg := testharness.StartInProcess(t)
	baseRef := reg.Ref("library/busybox:1.36")
	base := testharness.BusyboxImage(t)
	reg.Push(t, baseRef, base)
	work := t.TempDir()
	saveLikeDockerImageResource(t, base, filepath.Join(work, "base"), reg.Host+"/library/busybox", "1.36")
	copyContext(t, "e2e/multistage", filepath.Join(work, "ms"), nil)
	writeFile(t, filepath.Join(work, "args.yml"), "BASE_IMAGE: "+baseRef+"\nVERSION: \"2.0\"\n")

	for target, want := range map[string]map[string]string{
		"":       {"version.txt": "version 2.0"},
		"tester": {"out/version.txt": "version 2.0", "out/tested.txt": "tested"},
	} {
		params := map[string]any{"build": "ms", "load_base": "base", "build_args_file": "args.yml", "target_name": target}
		if target == "" {
			delete(params, "target_name")
		}
		put(t, work, source(reg, "ms"), params)
		files := imageFiles(t, reg.Image(t, reg.Ref("ms:latest")))
		for path, content := range want {
			if got := strings.TrimSpace(files[path]); got != content {
				t.Errorf("target %q: /%s = %q, want %q", target, path, got, content)
			}
		}
		if _, leaked := files["out/tested.txt"]; target == "" && leaked {
			t.Error("the final stage holds the tester stage's file")
		}
	}
}

// TestBuildOfflineWithAFromSpelledThreeWays: busybox, docker.io/library/busybox:latest and
// busybox@<digest> all use the one loaded base; with offline: true and the network cut (a network
// namespace holding only loopback and a registry to push to), the build succeeds.
func TestBuildOfflineWithAFromSpelledThreeWays(t *testing.T) {
	testharness.RequireCommand(t, "unshare", "util-linux")
	testharness.RequireCommand(t, "ip", "iproute2")
	base := testharness.BusyboxImage(t)
	baseDigest, _ := base.Digest()
	work := t.TempDir()
	baseDir := filepath.Join(work, "base")
	testharness.SaveOCIArchive(t, base, filepath.Join(mkdir(t, baseDir), "image.tar"), "")
	writeFile(t, filepath.Join(baseDir, "repository"), "busybox")
	writeFile(t, filepath.Join(baseDir, "tag"), "latest")
	copyContext(t, "e2e/three-ways", filepath.Join(work, "ctx"), map[string]string{"DIGEST": baseDigest.String()})

	storage := t.TempDir()
	resp, log := outOffline(t, work, storage, map[string]any{"build": "ctx", "load_base": "base", "offline": true})
	for _, spelling := range []string{"FROM busybox (line 1)", "FROM docker.io/library/busybox:latest (line 4)", "FROM busybox@" + baseDigest.String() + " (line 7)"} {
		if !strings.Contains(log, spelling+": using loaded base busybox:latest") {
			t.Errorf("log does not say %q used the loaded base", spelling)
		}
	}

	// Read the pushed image back from the registry's storage, outside the namespace.
	reg := testharness.StartPlainDistribution(t, storage)
	files := imageFiles(t, reg.Image(t, reg.Ref("offline@"+resp.Version.Digest)))
	if strings.TrimSpace(files["short.txt"]) != "short" || strings.TrimSpace(files["long.txt"]) != "long" {
		t.Fatalf("files: short %q long %q", files["short.txt"], files["long.txt"])
	}
}

func TestOfflineRefusesUncoveredFroms(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM alpine:3.20 AS a\nFROM debian:bookworm\nCOPY --from=a /etc/os-release /x\n")
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "x"), "params": map[string]any{"build": "ctx", "offline": true}}, work)
	want := "ERROR: params.offline: no loaded base covers alpine:3.20 (line 1), debian:bookworm (line 2)"
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant %q", res.ExitCode, res.Stderr, want)
	}
}

// getInto runs in for repo@digest into dir.
func getInto(t *testing.T, reg *testharness.Registry, repo, tag string, digest v1.Hash, dir string, params map[string]any) {
	t.Helper()
	if params["format"] == nil && params["save"] == nil && params["rootfs"] == nil {
		params = maps.Clone(params) // format oci: what load_base and cache_from read; the default is rootfs
		if params == nil {
			params = map[string]any{}
		}
		params["format"] = "oci"
	}
	res := testharness.Run(t, "in", map[string]any{
		"source": source(reg, repo, "tag", tag), "version": api.Version{Digest: digest.String(), Tag: tag}, "params": params,
	}, mkdir(t, dir))
	var resp api.Response
	res.JSON(t, &resp)
}

// saveLikeDockerImageResource writes what docker-image-resource's get with save: true leaves.
func saveLikeDockerImageResource(t *testing.T, img v1.Image, dir, repository, tag string) {
	t.Helper()
	testharness.SaveDockerArchive(t, img, filepath.Join(mkdir(t, dir), "image"), repository+":"+tag)
	configDigest, _ := img.ConfigName()
	writeFile(t, filepath.Join(dir, "repository"), repository)
	writeFile(t, filepath.Join(dir, "tag"), tag)
	writeFile(t, filepath.Join(dir, "image-id"), configDigest.String())
}

// copyContext copies testdata/<name> to dst, replacing placeholders in its files.
func copyContext(t *testing.T, name, dst string, replace map[string]string) {
	t.Helper()
	src := filepath.Join(testharness.ModuleRoot(t), "testdata", name)
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(data)
		for old, repl := range replace {
			text = strings.ReplaceAll(text, old, repl)
		}
		rel, _ := filepath.Rel(src, path)
		writeFile(t, filepath.Join(dst, rel), text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// imageFiles reads the image's flattened filesystem: regular files under 1 MB, by path.
func imageFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	files := map[string]string{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read image filesystem: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size < 1<<20 {
			data, _ := io.ReadAll(tr)
			files[strings.TrimPrefix(hdr.Name, "/")] = string(data)
		}
	}
}

// assertNowhere fails when secret appears in any layer, the config, or the command's output.
func assertNowhere(t *testing.T, secret string, img v1.Image, res testharness.Result) {
	t.Helper()
	if strings.Contains(string(res.Stdout), secret) || strings.Contains(res.Stderr, secret) {
		t.Error("the secret is in the command's output")
	}
	config, _ := img.RawConfigFile()
	if bytes.Contains(config, []byte(secret)) {
		t.Error("the secret is in the image config or history")
	}
	layers, _ := img.Layers()
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("the secret is in layer %d", i)
		}
	}
}

func historyMentions(cfg *v1.ConfigFile, text string) bool {
	for _, h := range cfg.History {
		if strings.Contains(h.CreatedBy, text) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

func mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// outOffline runs out in a network namespace of its own, where nothing but a docker-registry
// at 127.0.0.1:5000 answers (keeping its data in storage), pushing to 127.0.0.1:5000/offline.
// It returns the response and the log.
func outOffline(t *testing.T, work, storage string, params map[string]any) (api.Response, string) {
	t.Helper()
	writeFile(t, filepath.Join(work, "request.json"), mustJSON(t, map[string]any{
		"source": map[string]any{"repository": "127.0.0.1:5000/offline", "insecure": true},
		"params": params,
	}))
	writeFile(t, filepath.Join(storage, "config.yml"), "version: 0.1\nstorage: {filesystem: {rootdirectory: "+storage+"/data}}\nhttp: {addr: 127.0.0.1:5000}\n")
	script := `set -e
ip link set lo up
docker-registry serve "$1/config.yml" >"$1/registry.log" 2>&1 &
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/5000) 2>/dev/null && break; sleep 0.1; done
"$2" "$3" < "$3/request.json"`
	cmd := exec.Command("unshare", "-n", "bash", "-c", script, "netns", storage, filepath.Join(testharness.Binaries(t), "out"), work)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("out in a network namespace: %v\n%s", err, stderr.String())
	}
	t.Logf("stderr:\n%s", stderr.String())
	var resp api.Response
	testharness.Result{Stdout: stdout.Bytes(), Stderr: stderr.String()}.JSON(t, &resp)
	return resp, stderr.String()
}
