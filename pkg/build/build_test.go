package build

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"crypto/sha256"
	"encoding/hex"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
)

// fixture is the busybox base saved as an OCI archive and a docker-archive.
type fixture struct {
	ociArchive, dockerArchive string
	image                     v1.Image // as read back from the OCI layout
	digest                    string
}

var (
	fixtureOnce sync.Once
	fixtureDir  string
	theFixture  fixture
)

func busybox(t *testing.T) fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "build-test-")
		if err != nil {
			t.Fatal(err)
		}
		fixtureDir = dir
		img := busyboxImage(t)
		f := fixture{ociArchive: filepath.Join(dir, "busybox-oci.tar"), dockerArchive: filepath.Join(dir, "busybox-docker.tar")}
		f.image = saveOCIArchive(t, f.ociArchive, filepath.Join(dir, "layout"), img)
		saveDockerArchive(t, f.dockerArchive, "busybox:latest", img)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		f.digest = d.String()
		theFixture = f
	})
	if theFixture.image == nil {
		t.Fatal("no busybox fixture")
	}
	return theFixture
}

// build runs Build on testdata/build/<name> and closes the result at the
// end of the test, checking that nothing is left in the work directory.
func build(t *testing.T, name string, opts Options) (*Result, string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "build", name))
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextDir, opts.Dockerfile = dir, filepath.Join(dir, "Dockerfile")
	opts.WorkDir = t.TempDir()
	var out bytes.Buffer
	opts.Stderr = &out
	opts.Log = logrus.New()
	opts.Log.SetOutput(&out)
	if os.Getenv("BUILD_TEST_SANDBOX") != "" {
		opts.Sandbox = true
	}
	res, err := Build(context.Background(), parsed(t, opts))
	t.Logf("build output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	t.Cleanup(func() {
		if err := res.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		left, err := os.ReadDir(opts.WorkDir)
		if err != nil || len(left) > 0 {
			t.Errorf("work dir not empty after Close: %v %v", left, err)
		}
	})
	return res, out.String()
}

func TestBuildSingleStage(t *testing.T) {
	bb := busybox(t)
	res, out := build(t, "single", Options{
		Labels: map[string]string{"org.example.team": "tools"},
		Bases: []Base{{
			Names: []string{"docker.io/library/busybox:latest"}, Digest: bb.digest,
			Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image,
		}},
	})

	files := imageFiles(t, res.Image)
	if got, want := files["/app/out.txt"], "hello world\nfrom the build context\n"; got != want {
		t.Errorf("/app/out.txt = %q, want %q", got, want)
	}
	if _, ok := files["/bin/busybox"]; !ok {
		t.Error("/bin/busybox missing")
	}

	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cf.Config.Env, "GREETING=hello") || !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		t.Errorf("env = %v", cf.Config.Env)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/bin/sh -c cat /app/out.txt" {
		t.Errorf("entrypoint = %q", got)
	}
	wantLabels := map[string]string{
		"org.example.team":                     "tools",
		"org.opencontainers.image.base.name":   "docker.io/library/busybox:latest",
		"org.opencontainers.image.base.digest": bb.digest,
	}
	for k, v := range wantLabels {
		if cf.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
		}
	}
	m, err := res.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("media types %s / %s, want OCI", m.MediaType, m.Config.MediaType)
	}
	if m.Annotations["org.opencontainers.image.base.digest"] != bb.digest || m.Annotations["org.opencontainers.image.base.name"] != "docker.io/library/busybox:latest" {
		t.Errorf("annotations = %v", m.Annotations)
	}
	assertBaseLayersReused(t, bb.image, res.Image)
	if len(m.Layers) != 3 { // base + COPY + RUN
		t.Errorf("%d layers, want 3", len(m.Layers))
	}

	if res.BaseDigests["docker.io/library/busybox:latest"] != bb.digest {
		t.Errorf("base digests = %v", res.BaseDigests)
	}
	// The labels are laid over the config after the build: they add no LABEL step.
	if len(res.Steps) != 5 || res.Steps[3].Instruction != `RUN echo "$GREETING world" > /app/out.txt && cat /app/greeting.txt >> /app/out.txt` ||
		res.Steps[3].Number != 4 || res.Steps[3].Total != 5 {
		t.Errorf("steps = %+v", res.Steps)
	}
	for _, line := range []string{"STEP 4/5: RUN echo", "STEP 1/5: FROM busybox ("} {
		if !strings.Contains(out, line) {
			t.Errorf("output lacks %q", line)
		}
	}
	if _, err := res.Image.Digest(); err != nil {
		t.Errorf("digest: %v", err)
	}
}

func TestBuildMultiStageDockerArchiveByDigest(t *testing.T) {
	bb := busybox(t)
	byDigest := "docker.io/library/busybox@" + bb.digest
	res, out := build(t, "multistage", Options{
		BuildArgs:      map[string]string{"BASE": "busybox@" + bb.digest},
		ManifestFormat: "docker",
		Bases: []Base{{
			Names: []string{"docker.io/library/busybox:latest", byDigest}, Digest: bb.digest,
			Transport: "docker-archive", Path: bb.dockerArchive, Image: bb.image,
		}},
	})
	files := imageFiles(t, res.Image)
	if got := files["/artifact"]; got != "built\n" {
		t.Errorf("/artifact = %q", got)
	}
	if _, ok := files["/out/artifact"]; ok {
		t.Error("the builder stage's /out leaked into the final image")
	}
	m, err := res.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 || m.Layers[0].MediaType != types.DockerLayer || m.Layers[1].MediaType != types.DockerLayer {
		t.Errorf("media types: %s, layers %+v", m.MediaType, m.Layers)
	}
	assertBaseLayersReused(t, bb.image, res.Image)
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Labels["org.opencontainers.image.base.name"] != byDigest {
		t.Errorf("labels = %v", cf.Config.Labels)
	}
	if !strings.Contains(out, "[2/2] STEP 2/3: COPY --from=builder") {
		t.Errorf("output lacks the multi-stage step header")
	}
}

func TestBuildSecretLeavesNoTrace(t *testing.T) {
	bb := busybox(t)
	secret := []byte("s3cr3t-v4lue-that-must-not-leak")
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	res, _ := build(t, "secret", Options{
		Secrets: map[string]string{"token": secretFile},
		Bases:   []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}},
	})
	sum := sha256.Sum256(secret)
	if got := imageFiles(t, res.Image)["/token.sha256"]; got != hex.EncodeToString(sum[:])+"\n" {
		t.Errorf("RUN saw another secret: %q", got)
	}
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, secret) {
			t.Errorf("layer %d holds the secret", i)
		}
	}
	config, err := res.Image.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := res.Image.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(config, secret) || bytes.Contains(manifest, secret) {
		t.Error("config or manifest holds the secret")
	}
}

func TestBuildTargetFromOCILayout(t *testing.T) {
	bb := busybox(t)
	// A layout with two images: the base must be picked by digest.
	other := busyboxImage(t, file{name: "other.txt", data: []byte("other"), mode: 0o644})
	dir := filepath.Join(t.TempDir(), "layout")
	saved := saveOCILayout(t, dir, other, bb.image)
	res, out := build(t, "target", Options{
		Target: "dev",
		Bases:  []Base{{Names: []string{"docker.io/library/busybox:latest"}, Digest: bb.digest, Transport: "oci", Path: dir, Image: saved[1]}},
	})
	files := imageFiles(t, res.Image)
	if files["/base.txt"] != "base\n" || files["/dev.txt"] != "dev\n" {
		t.Errorf("missing files of the dev target: %v %v", files["/base.txt"], files["/dev.txt"])
	}
	for _, f := range []string{"/prod.txt", "/other.txt"} {
		if _, ok := files[f]; ok {
			t.Errorf("%s must not be in the dev target", f)
		}
	}
	assertBaseLayersReused(t, bb.image, res.Image)
	if strings.Contains(out, "prod") {
		t.Error("the prod stage was built")
	}
}

func TestBuildSquash(t *testing.T) {
	bb := busybox(t)
	res, _ := build(t, "single", Options{
		Squash:        true,
		NoCache:       true,
		StorageDriver: "vfs",
		Bases:         []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}},
	})
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("%d layers, want the base's and one new", len(layers))
	}
	assertBaseLayersReused(t, bb.image, res.Image)
	if got := imageFiles(t, res.Image)["/app/out.txt"]; got != "hello world\nfrom the build context\n" {
		t.Errorf("/app/out.txt = %q", got)
	}
}

func TestBuildFailingStepReportsIt(t *testing.T) {
	bb := busybox(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM busybox\nRUN echo failing && exit 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	_, err := Build(context.Background(), parsed(t, Options{
		ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), WorkDir: work, Stderr: &out, Log: log,
		Bases:   []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}},
		Sandbox: os.Getenv("BUILD_TEST_SANDBOX") != "",
	}))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("error = %v, want the RUN's exit status", err)
	}
	if !strings.Contains(out.String(), "failing") {
		t.Errorf("RUN output missing:\n%s", out.String())
	}
	if left, _ := os.ReadDir(work); len(left) > 0 {
		t.Errorf("failed build left %v", left)
	}
}

// assertBaseLayersReused checks that the result starts with the base's
// layers, with the same digests and compressed bytes.
func assertBaseLayersReused(t *testing.T, base, result v1.Image) {
	t.Helper()
	baseLayers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	resultLayers, err := result.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(resultLayers) <= len(baseLayers) {
		t.Fatalf("result has %d layers, base %d", len(resultLayers), len(baseLayers))
	}
	m, err := result.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, bl := range baseLayers {
		want, _ := bl.Digest()
		got, _ := resultLayers[i].Digest()
		if got != want || m.Layers[i].Digest != want {
			t.Errorf("layer %d: digest %s (manifest %s), base has %s", i, got, m.Layers[i].Digest, want)
		}
	}
}
