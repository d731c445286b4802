package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

const sentinelPassword = "s3ntinel-Pa55word"

// TestBadInputFailsInOneLine: every malformed request exits non-zero with one error line naming
// the field or file, prints nothing on stdout, never shows the password, and pushes nothing.
func TestBadInputFailsInOneLine(t *testing.T) {
	reg := testharness.StartDistribution(t)
	src := func(extra ...any) map[string]any {
		s := source(reg, "app", extra...)
		return s
	}
	digest := "sha256:" + strings.Repeat("0", 64)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "empty-tag"), "")
	writeFile(t, filepath.Join(work, "notimage/readme"), "hello")
	writeFile(t, filepath.Join(work, "corrupt/image.tar"), "not a tar at all")
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM busybox\n")
	writeFile(t, filepath.Join(work, "args.yml"), "key: [unclosed")

	cases := []struct {
		name, bin string
		request   any
		want      string
	}{
		{"not JSON", "check", "{", "request: expected a JSON object"},
		{"missing repository", "check", map[string]any{"source": map[string]any{"password": sentinelPassword}}, "source.repository: required"},
		{"wrong type", "check", map[string]any{"source": src("tag", 1)}, "source.tag: expected a string, got number"},
		{"unknown key", "check", map[string]any{"source": src("colour", "red")}, "source.colour: unknown field"},
		{"not supported", "check", map[string]any{"source": src("aws_region", "x")}, "source.aws_region: not supported yet"},
		{"empty tag", "check", map[string]any{"source": src("tag", "")}, "source.tag: expected a tag"},
		{"bad tag chars", "check", map[string]any{"source": src("tag", "a:b")}, "source.tag: expected a tag"},
		{"bad regex", "check", map[string]any{"source": src("tag_regex", "(")}, "source.tag_regex: expected a regular expression"},
		{"bad semver", "check", map[string]any{"source": src("semver_constraint", "not a constraint")}, "source.semver_constraint: expected a semver constraint"},
		{"bad ca cert", "check", map[string]any{"source": src("ca_certs", []string{"x"})}, "source.ca_certs[0]: expected a PEM certificate"},
		{"wrong password", "check", map[string]any{"source": src("password", sentinelPassword)}, "resolve " + reg.Host + "/app:latest"},
		{"in without version", "in", map[string]any{"source": src()}, "version.digest: expected sha256:"},
		{"in bad format", "in", map[string]any{"source": src(), "version": map[string]any{"digest": digest}, "params": map[string]any{"format": "zip"}}, "params.format: expected oci, oci-layout or rootfs"},
		{"in missing digest", "in", map[string]any{"source": src(), "version": map[string]any{"digest": digest}}, "fetch " + reg.Host + "/app@" + digest},
		{"out nothing", "out", map[string]any{"source": src(), "params": map[string]any{}}, "params: one of build, image, load, load_file or import_file is required"},
		{"out glob matches nothing", "out", map[string]any{"source": src(), "params": map[string]any{"image": "nope/*.tar"}}, `params.image: "nope/*.tar" matched 0 files`},
		{"out empty tag file", "out", map[string]any{"source": src(), "params": map[string]any{"image": "corrupt/image.tar", "tag_file": "empty-tag"}}, "params.tag_file: empty-tag is empty"},
		{"out load dir without image", "out", map[string]any{"source": src(), "params": map[string]any{"load": "notimage"}}, "params.load: " + filepath.Join(work, "notimage") + ": no image found"},
		{"out corrupt archive", "out", map[string]any{"source": src(), "params": map[string]any{"image": "corrupt/image.tar"}}, "params.image: " + filepath.Join(work, "corrupt/image.tar") + ": not a readable tar"},
		{"out missing import file", "out", map[string]any{"source": src(), "params": map[string]any{"import_file": "nope.tar"}}, "params.import_file: read rootfs tarball"},
		{"out build dir missing", "out", map[string]any{"source": src(), "params": map[string]any{"build": "nope"}}, "params.build: nope is not a directory"},
		{"out dockerfile missing", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "dockerfile": "ctx/Nope"}}, "params.dockerfile: cannot read ctx/Nope"},
		{"out bad build args file", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "build_args_file": "args.yml"}}, "params.build_args_file: args.yml: expected a YAML mapping"},
		{"out missing secret", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "secrets": map[string]any{"s": map[string]any{"source": "nope"}}}}, "params.secrets.s.source: nope does not exist"},
		{"out load_base without image", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "load_base": "notimage"}}, "load base notimage: " + filepath.Join(work, "notimage") + ": no image found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg.ResetRequests()
			dir := ""
			if c.bin != "check" {
				dir = work
			}
			res := testharness.Run(t, c.bin, c.request, dir, "SECRET_ENV="+sentinelPassword)
			if res.ExitCode == 0 {
				t.Fatalf("exit 0, stdout %s", res.Stdout)
			}
			if len(res.Stdout) != 0 {
				t.Errorf("stdout carries %q on failure", res.Stdout)
			}
			lines := strings.Split(strings.TrimSpace(res.Stderr), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "ERROR: "+c.want) {
				t.Errorf("error line %q, want prefix %q", last, "ERROR: "+c.want)
			}
			if strings.Contains(res.Stderr, sentinelPassword) || strings.Contains(res.Stderr, "goroutine ") {
				t.Errorf("stderr shows the password or a stack trace:\n%s", res.Stderr)
			}
			for _, r := range reg.Requests() {
				if r.Method == "PUT" || r.Method == "POST" || r.Method == "PATCH" {
					t.Errorf("registry received %s %s", r.Method, r.Path)
				}
			}
		})
	}
}
