package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
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
	writeFile(t, filepath.Join(work, "bad-syntax/Dockerfile"), "FROM busybox\nFORM busybox\n")
	writeFile(t, filepath.Join(work, "bad-tags"), "good bad/tag")
	writeFile(t, filepath.Join(work, "not-a-tar.tar"), "plain text")
	truncatedArchive(t, filepath.Join(work, "base-truncated/image.tar"))
	archiveWithoutLayer(t, filepath.Join(work, "load-missing-layer/image"))

	cases := []struct {
		name, bin string
		request   any
		want      string
	}{
		{"not JSON", "check", "{", "request: expected a JSON object"},
		{"missing repository", "check", map[string]any{"source": map[string]any{"password": sentinelPassword}}, "source.repository: required"},
		{"wrong type", "check", map[string]any{"source": src("tag", true)}, "source.tag: expected a string, got bool"},
		{"unknown key", "check", map[string]any{"source": src("colour", "red")}, "source.colour: unknown field"},
		{"not supported", "check", map[string]any{"source": src("aws_ecr_registry_id", "x")}, "source.aws_ecr_registry_id: not supported yet"},
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
		{"in not JSON", "in", "[1,2", "request: expected a JSON object"},
		{"out not JSON", "out", "", "request: expected a JSON object: not valid JSON"},
		{"in unknown param", "in", map[string]any{"source": src(), "version": map[string]any{"digest": digest}, "params": map[string]any{"formats": "oci"}}, "params.formats: unknown field"},
		{"in short digest", "in", map[string]any{"source": src(), "version": map[string]any{"digest": "sha256:abc"}}, "version.digest: expected sha256:<64 hex digits>"},
		{"in version wrong type", "in", map[string]any{"source": src(), "version": "sha256:x"}, "version: expected an object"},
		{"mirror wrong type", "check", map[string]any{"source": src("registry_mirror", 5)}, "source.registry_mirror: expected {host, username, password} or a URL string"},
		{"private registries wrong type", "check", map[string]any{"source": src("additional_private_registries", "x")}, "source.additional_private_registries: expected a list"},
		{"negative uploads", "check", map[string]any{"source": src("max_concurrent_uploads", -1)}, "source.max_concurrent_downloads: expected a positive number"},
		{"out load dir missing", "out", map[string]any{"source": src(), "params": map[string]any{"load": "nope"}}, "params.load: " + filepath.Join(work, "nope") + ": no such file or directory"},
		{"out docker archive missing a layer", "out", map[string]any{"source": src(), "params": map[string]any{"load": "load-missing-layer"}}, "params.load: " + filepath.Join(work, "load-missing-layer/image") + ": "},
		{"out import not a tar", "out", map[string]any{"source": src(), "params": map[string]any{"import_file": "not-a-tar.tar"}}, "params.import_file: "},
		{"out bad additional tag", "out", map[string]any{"source": src(), "params": map[string]any{"image": "corrupt/image.tar", "additional_tags": "bad-tags"}}, `params.additional_tags: bad-tags holds "bad/tag"`},
		{"out bad tag prefix", "out", map[string]any{"source": src(), "params": map[string]any{"image": "corrupt/image.tar", "tag_prefix": "v/"}}, "params.tag_prefix: expected tag characters"},
		{"out version not semver", "out", map[string]any{"source": src(), "params": map[string]any{"image": "corrupt/image.tar", "version": "latest-ish", "bump_aliases": true}}, "params.version: expected a semantic version"},
		{"out labels file missing", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "labels_file": "nope.yml"}}, "params.labels_file: nope.yml: no such file or directory"},
		{"out secret env unset", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "secrets": map[string]any{"s": map[string]any{"env": "NOT_SET_ANYWHERE"}}}}, "params.secrets.s.env: environment variable NOT_SET_ANYWHERE is not set"},
		{"out Dockerfile syntax error", "out", map[string]any{"source": src(), "params": map[string]any{"build": "bad-syntax"}}, "params.dockerfile: Dockerfile line 2"},
		{"out unknown target", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "target_name": "nope"}}, "params.dockerfile: "},
		{"out truncated load_base", "out", map[string]any{"source": src(), "params": map[string]any{"build": "ctx", "load_base": "base-truncated"}}, "load base base-truncated: " + filepath.Join(work, "base-truncated/image.tar") + ": "},
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

// truncatedArchive writes the first half of a valid OCI archive.
func truncatedArchive(t *testing.T, path string) {
	full := filepath.Join(t.TempDir(), "full.tar")
	testharness.SaveOCIArchive(t, testharness.MultiLayerImage(t, 1, 1<<16), full, "")
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data[:len(data)/2]))
}

// archiveWithoutLayer writes a docker archive whose manifest.json lists a layer file it lacks.
func archiveWithoutLayer(t *testing.T, path string) {
	full := filepath.Join(t.TempDir(), "full.tar")
	testharness.SaveDockerArchive(t, testharness.MultiLayerImage(t, 1, 1<<10), full, "example.com/a:1")
	in, err := os.Open(full)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&out)
	dropped := false
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if strings.HasSuffix(hdr.Name, ".tar.gz") && !dropped {
			dropped = true
			continue
		}
		tw.WriteHeader(hdr)
		io.Copy(tw, tr)
	}
	tw.Close()
	writeFile(t, path, out.String())
	writeFile(t, filepath.Join(filepath.Dir(path), "repository"), "example.com/a")
	writeFile(t, filepath.Join(filepath.Dir(path), "tag"), "1")
}
