package build

import (
	"archive/tar"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// The sandbox runtime (pkg/sandbox) runs RUN steps where chroot isolation cannot; here it is
// forced on a host where both work, and its image is compared with chroot isolation's.
func TestSandboxRunsWhatARunNeeds(t *testing.T) {
	bb := busybox(t)
	base := []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}}
	sandboxed, out := build(t, "sandbox", Options{Sandbox: true, Bases: base})
	if !strings.Contains(out, "RUN steps: chrooted by the resource's own runtime") {
		t.Errorf("the log does not say the sandbox runs the steps:\n%s", out)
	}
	files := imageFiles(t, sandboxed.Image)
	for name, want := range map[string]string{
		"/random-bytes": "16\n", "/zeros": "00000000", "/home/app/uid": "1000\n",
		"/cache-listing": "file\n", "/exec-form": "exec form\n", "/context-froms": "2\n",
	} {
		if got := files[name]; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if owner := owners(t, sandboxed.Image)["home/app/mine"]; owner != 1000 {
		t.Errorf("home/app/mine is owned by %d, want the step's user 1000", owner)
	}

	chrooted, _ := build(t, "sandbox", Options{Bases: base})
	got, want := layerEntries(t, sandboxed.Image), layerEntries(t, chrooted.Image)
	if len(got) != len(want) {
		t.Fatalf("sandbox: %d layers, chroot: %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("layer %d holds\n  %s\nwith the sandbox, and with chroot isolation\n  %s", i, got[i], want[i])
		}
	}
}

// Tests of chroot isolation that hold for the sandbox too.
func TestSandboxSecretLeavesNoTrace(t *testing.T) {
	t.Setenv("BUILD_TEST_SANDBOX", "1")
	TestBuildSecretLeavesNoTrace(t)
}

func TestSandboxFailingStepReportsIt(t *testing.T) {
	t.Setenv("BUILD_TEST_SANDBOX", "1")
	TestBuildFailingStepReportsIt(t)
}

func TestSandboxMultiStage(t *testing.T) {
	t.Setenv("BUILD_TEST_SANDBOX", "1")
	TestBuildMultiStageDockerArchiveByDigest(t)
}

// layerEntries lists, per layer, the names it holds.
func layerEntries(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	all := make([]string, len(layers))
	testharness.EachLayerEntry(t, img, func(layer int, h *tar.Header) {
		all[layer] = strings.TrimSpace(all[layer] + " " + h.Name)
	})
	return all
}

// owners maps every entry of the image's layers to its owner (the last layer's, for a name in
// several).
func owners(t *testing.T, img v1.Image) map[string]int {
	t.Helper()
	owner := map[string]int{}
	testharness.EachLayerEntry(t, img, func(_ int, h *tar.Header) { owner[h.Name] = h.Uid })
	return owner
}
