package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// outsideSentinel is the content of files outside the work dir: it must never reach the build log.
const outsideSentinel = "Sentinel0utside"

// paramFilesLayout makes base/work, the put's work dir, and base/outside, a sibling holding files
// the work dir's symlinks point to. It returns both.
func paramFilesLayout(t *testing.T) (work, outside string) {
	base := t.TempDir()
	work, outside = filepath.Join(base, "work"), filepath.Join(base, "outside")
	writeFile(t, filepath.Join(outside, "tag"), outsideSentinel+"\n")
	writeFile(t, filepath.Join(outside, "bad-tags"), "fine x/"+outsideSentinel+"\n")
	writeFile(t, filepath.Join(outside, "labels.yml"), outsideSentinel+": [a, b]\n")
	writeFile(t, filepath.Join(outside, "args.yml"), "key: *"+outsideSentinel+"\n")
	writeFile(t, filepath.Join(outside, "secret"), outsideSentinel)
	writeFile(t, filepath.Join(outside, "ctx/Dockerfile"), "FROM busybox\nRUN echo "+outsideSentinel+"\n")
	mkdir(t, filepath.Join(outside, "images"))
	testharness.SaveOCIArchive(t, testharness.MultiLayerImage(t, 1, 1<<10), filepath.Join(outside, "images/image.tar"), "")

	mkdir(t, work)
	testharness.SaveOCIArchive(t, testharness.MultiLayerImage(t, 1, 1<<10), filepath.Join(work, "image.tar"), "")
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM busybox\n")
	for link, target := range map[string]string{
		"tag-link": "../outside/tag", "more-link": filepath.Join(outside, "bad-tags"),
		"labels-link": "../outside/labels.yml", "args-link": "../outside/args.yml",
		"df-link": "../outside/ctx/Dockerfile", "ctx-link": "../outside/ctx", "img-link": "../outside/images",
		"secret-link": "../outside/secret", "zero-link": "/dev/zero", "ctx/Dockerfile.link": "../../outside/ctx/Dockerfile",
	} {
		if err := os.Symlink(target, filepath.Join(work, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(work, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(work, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	if err := big.Truncate(2 << 20); err != nil { // sparse: 2 MiB of zeros
		t.Fatal(err)
	}
	return work, outside
}

// TestParamFilesStayInTheVolume: a relative param naming a file or directory that resolves outside
// the work dir (through a symlink a repository can carry, or ..), a device, a fifo or an oversized
// file fails in one line naming the param, shows none of the outside file's content and pushes nothing.
func TestParamFilesStayInTheVolume(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work, _ := paramFilesLayout(t)
	const outsideErr = "resolves outside the work dir"
	cases := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"tag_file symlink", map[string]any{"image": "image.tar", "tag_file": "tag-link"}, "params.tag_file: tag-link: " + outsideErr},
		{"tag_file dotdot", map[string]any{"image": "image.tar", "tag_file": "../outside/tag"}, "params.tag_file: ../outside/tag: " + outsideErr},
		{"additional_tags symlink", map[string]any{"image": "image.tar", "additional_tags": "more-link"}, "params.additional_tags: more-link: " + outsideErr},
		{"tag_file zero-link", map[string]any{"image": "image.tar", "tag_file": "zero-link"}, "params.tag_file: zero-link: " + outsideErr},
		{"tag_file dev zero", map[string]any{"image": "image.tar", "tag_file": "/dev/zero"}, "params.tag_file: /dev/zero: not a regular file"},
		{"tag_file fifo", map[string]any{"image": "image.tar", "tag_file": "fifo"}, "params.tag_file: fifo: not a regular file"},
		{"tag_file big", map[string]any{"image": "image.tar", "tag_file": "big"}, "params.tag_file: big: larger than 1 MiB"},
		{"tag_file directory", map[string]any{"image": "image.tar", "tag_file": "ctx"}, "params.tag_file: ctx: not a regular file"},
		{"image glob through symlink", map[string]any{"image": "img-link/*.tar"}, "params.image: img-link/image.tar: " + outsideErr},
		{"labels_file symlink", map[string]any{"build": "ctx", "labels_file": "labels-link"}, "params.labels_file: labels-link: " + outsideErr},
		{"build_args_file symlink", map[string]any{"build": "ctx", "build_args_file": "args-link"}, "params.build_args_file: args-link: " + outsideErr},
		{"dockerfile symlink", map[string]any{"build": "ctx", "dockerfile": "df-link"}, "params.dockerfile: df-link: " + outsideErr},
		{"dockerfile in context symlink", map[string]any{"build": "ctx", "dockerfile": "ctx/Dockerfile.link"}, "params.dockerfile: ctx/Dockerfile.link: " + outsideErr},
		{"build context symlink", map[string]any{"build": "ctx-link"}, "params.build: ctx-link: " + outsideErr},
		{"build context dotdot", map[string]any{"build": "../outside/ctx"}, "params.build: ../outside/ctx: " + outsideErr},
		{"load_base symlink", map[string]any{"build": "ctx", "load_base": "img-link"}, "params.load_base: img-link: " + outsideErr},
		{"load_bases symlink", map[string]any{"build": "ctx", "load_bases": []string{"img-link"}}, "params.load_bases[0]: img-link: " + outsideErr},
		{"cache_from symlink", map[string]any{"build": "ctx", "cache_from": []string{"img-link"}}, "params.cache_from[0]: img-link: " + outsideErr},
		{"cache_mounts_from symlink", map[string]any{"build": "ctx", "cache_mounts_from": []string{"img-link"}}, "params.cache_mounts_from[0]: img-link: " + outsideErr},
		{"load symlink", map[string]any{"load": "img-link"}, "params.load: img-link: " + outsideErr},
		{"load_file dotdot", map[string]any{"load_file": "../outside/images/image.tar"}, "params.load_file: ../outside/images/image.tar: " + outsideErr},
		{"import_file symlink", map[string]any{"import_file": "img-link/image.tar"}, "params.import_file: img-link/image.tar: " + outsideErr},
		{"secret source symlink", map[string]any{"build": "ctx", "secrets": map[string]any{"s": map[string]any{"source": "secret-link"}}}, "params.secrets.s.source: secret-link: " + outsideErr},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg.ResetRequests()
			res := testharness.Run(t, "out", map[string]any{"source": source(reg, "app"), "params": c.params}, work)
			if res.ExitCode == 0 {
				t.Fatalf("exit 0, stdout %s", res.Stdout)
			}
			lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ERROR: "+c.want) {
				t.Errorf("error line %q, want prefix %q", last, "ERROR: "+c.want)
			}
			if strings.Contains(res.Stderr, outsideSentinel) || strings.Contains(string(res.Stdout), outsideSentinel) {
				t.Errorf("the outside file's content reached the output:\nstdout %s\nstderr %s", res.Stdout, res.Stderr)
			}
			for _, r := range reg.Requests() {
				if r.Method == "PUT" && strings.Contains(r.Path, "/manifests/") {
					t.Errorf("registry received %s %s", r.Method, r.Path)
				}
			}
		})
	}
}

// TestParamFilesAbsolutePathsStayAllowed: an absolute path is the pipeline author's choice, read
// where it points, even outside the work dir (docker-image-resource's pipelines use them).
func TestParamFilesAbsolutePathsStayAllowed(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work, outside := paramFilesLayout(t)
	resp := put(t, work, source(reg, "app"), map[string]any{
		"image": filepath.Join(outside, "images/*.tar"), "tag_file": filepath.Join(outside, "tag"),
	})
	if resp.Version.Tag != outsideSentinel {
		t.Fatalf("tag %q, want %q from the absolute tag_file", resp.Version.Tag, outsideSentinel)
	}
}

// TestParamFilesInsideTheVolumeFollowSymlinks: symlinks that stay in the work dir, relative or
// absolute paths into it, keep working.
func TestParamFilesInsideTheVolumeFollowSymlinks(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work, _ := paramFilesLayout(t)
	writeFile(t, filepath.Join(work, "version/tag"), "2.0.0\n")
	if err := os.Symlink("../version/tag", filepath.Join(work, "ctx/tag")); err != nil {
		t.Fatal(err)
	}
	resp := put(t, work, source(reg, "app"), map[string]any{"image": filepath.Join(work, "image.tar"), "tag_file": "ctx/tag"})
	if resp.Version.Tag != "2.0.0" {
		t.Fatalf("tag %q, want 2.0.0 through the inside symlink", resp.Version.Tag)
	}
}
