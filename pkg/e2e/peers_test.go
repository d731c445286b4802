package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// The request shapes the test suites of concourse/docker-image-resource (tests/*_test.go, the
// behaviour of assets/in, assets/out, cmd/check) and concourse/registry-image-resource
// (check_test.go, in_test.go, out_test.go) drive, ported as tables and run against a real
// registry. Case names start with the peer (docker-image, registry-image) and say what their test
// asserts. Where we answer differently on purpose, the case says so in `differs` and asserts our
// answer; docs/compatibility.md lists each.

// checkCase: tags are pushed in order, "tag=image" sharing an image with the other tags naming it;
// a tag pushed twice keeps its first digest as "tag#1". cursor names the requested version
// ("tag", "tag#1", "tag!" for its digest without the tag, "bogus" for latest with a digest the
// repository never had, "tag@bogus" for the tag with such a digest); want the versions reported.
type checkCase struct {
	name    string
	tags    []string
	source  []any
	cursor  string
	want    []string
	err     string // check fails with this in its last line
	differs string
}

var checkCases = []checkCase{
	{name: "docker-image: an image that does not exist", source: []any{"tag", "latest"}, want: []string{},
		differs: "no versions, no error: docker-image-resource failed only because Docker Hub answers 401 for an unknown repository"},
	{name: "docker-image: a tag that does not exist", tags: []string{"latest"}, source: []any{"tag", "aklsdf123"}, want: []string{}},
	{name: "docker-image: the digest of an existing image", tags: []string{"latest"}, want: []string{"latest"}},
	{name: "docker-image: a quoted numeric tag", tags: []string{"3.7"}, source: []any{"tag", "3.7"}, want: []string{"3.7"}},
	{name: "docker-image: a numeric tag", tags: []string{"3.7"}, source: []any{"tag", 3.7}, want: []string{"3.7"}},
	{name: "registry-image: an up-to-date cursor", tags: []string{"latest"}, cursor: "latest", want: []string{"latest"}},
	{name: "registry-image: a cursor missing the tag gets it", tags: []string{"latest"}, cursor: "latest!", want: []string{"latest"}},
	{name: "docker-image and registry-image: an out-of-date cursor, then the current digest", tags: []string{"latest", "latest"},
		cursor: "latest#1", want: []string{"latest#1", "latest"}},
	{name: "registry-image: a cursor the repository never had", tags: []string{"latest"}, cursor: "bogus", want: []string{"latest"}},
	{name: "registry-image: a tag that does not exist: no versions", tags: []string{"latest"}, source: []any{"tag", "not-exist-image"}, want: []string{}},

	// registry-image-resource's "tracking semver tags" table. Its semver mode is a source without a
	// tag; ours needs semver_constraint (a source with only a repository follows latest, as
	// docker-image-resource), so these set "*" where theirs set nothing.
	{name: "registry-image: no semver tags", tags: []string{"non-semver-tag"}, source: []any{"semver_constraint", "*"}, want: []string{}},
	{name: "registry-image: no matching regex tags", tags: []string{"non-matching-regex-tag"}, source: []any{"tag_regex", "foo.*"}, want: []string{}},
	{name: "registry-image: simple tag regex", tags: []string{"1.0.0", "non-semver-tag", "gray", "grey"},
		source: []any{"tag_regex", "gr(a|e)y"}, want: []string{"gray", "grey"}},
	{name: "registry-image: regex overrides semver constraint (refused here)", tags: []string{"1.0.0", "1.2.1", "1.2.2", "2.0.0", "latest", "gray", "grey"},
		source:  []any{"tag_regex", "gr(a|e)y", "semver_constraint", "1.2.x"},
		err:     "source.tag_regex: cannot be combined with source.semver_constraint",
		differs: "refused: registry-image-resource silently drops the constraint; the source must say which rule it means"},
	{name: "registry-image: semver and non-semver tags", tags: []string{"1.0.0", "non-semver-tag"}, source: []any{"semver_constraint", "*"}, want: []string{"1.0.0"}},
	{name: "registry-image: regex keeps ordering", tags: []string{"1.0.0", "3bd8a5e-dev", "3bd8a5e-stage", "non-matching-regex-tag", "67e3c33-dev"},
		source: []any{"tag_regex", "^[0-9a-f]{7}-dev$"}, want: []string{"3bd8a5e-dev", "67e3c33-dev"}},
	{name: "registry-image: semver tag ordering", tags: []string{"2.0.0", "1.0.0", "1.2.1"}, source: []any{"semver_constraint", "*"},
		want: []string{"1.0.0", "1.2.1", "2.0.0"}},
	{name: "registry-image: semver tag ordering with cursor", tags: []string{"1.0.0", "1.2.1", "2.0.0"}, source: []any{"semver_constraint", "*"},
		cursor: "1.2.1", want: []string{"1.2.1", "2.0.0"}},
	{name: "registry-image: semver tag ordering with a cursor of another digest", tags: []string{"1.0.0", "1.2.1", "2.0.0"},
		source: []any{"semver_constraint", "*"}, cursor: "1.2.1@bogus", want: []string{"1.2.1", "2.0.0"},
		differs: "the cursor is found by its tag; registry-image-resource starts over from the oldest when the tag's digest moved"},
	{name: "registry-image: tag_regex matches anywhere in the tag", tags: []string{"3bd8a5e-dev", "release"},
		source: []any{"tag_regex", "dev"}, want: []string{},
		differs: "tag_regex must match the whole tag (write .*dev.*); registry-image-resource's matches anywhere"},
	{name: "registry-image: semver constraint (a v prefix counts)", tags: []string{"1.0.0", "1.2.1", "1.2.2", "v1.2.3", "2.0.0", "latest"},
		source: []any{"semver_constraint", "1.2.x"}, want: []string{"1.2.1", "1.2.2", "v1.2.3"}},
	{name: "registry-image: prereleases ignored by default", tags: []string{"1.0.0-alpha.1", "1.0.0", "1.2.1-beta.1", "1.2.1", "2.0.0-rc.1", "2.0.0"},
		source: []any{"semver_constraint", "*"}, want: []string{"1.0.0", "1.2.1", "2.0.0"}},
	{name: "registry-image: prereleases opted in", tags: []string{"1.0.0-alpha.1", "1.0.0", "1.2.1-beta.1", "1.2.1", "2.0.0-rc.1", "2.0.0"},
		source: []any{"semver_constraint", "*", "pre_releases", true},
		want:   []string{"1.0.0-alpha.1", "1.0.0", "1.2.1-beta.1", "1.2.1", "2.0.0-rc.1", "2.0.0"}},
	{name: "registry-image: prereleases do not include variants", tags: []string{"1.0.0-alpha.1", "1.0.0-beta.1", "1.0.0-rc.1", "1.0.0-foo.1"},
		source: []any{"semver_constraint", "*", "pre_releases", true}, want: []string{"1.0.0-alpha.1", "1.0.0-beta.1", "1.0.0-rc.1"}},
	{name: "registry-image: final versions take priority over rcs", tags: []string{"1.0.0-rc.1=a", "1.0.0=a"},
		source: []any{"semver_constraint", "*", "pre_releases", true}, want: []string{"1.0.0"}},
	{name: "registry-image: mixed specificity semver tags, one version per digest",
		tags:   []string{"1=r1", "2=r2", "2.1=r2", "latest=r3", "3=r3", "3.2=r3", "3.2.1=r3", "3.1=r4", "3.1.0=r4", "3.0=r5", "3.0.0=r5"},
		source: []any{"semver_constraint", "*"}, want: []string{"3.0.0", "3.1.0", "3.2.1"},
		differs: "alias tags (1, 2.1: fewer than three numbers) are never versions here, even when no full version shares their digest"},
	{name: "registry-image: variants, no constraint needed", tags: []string{"latest=r1", "1.0.0=r1", "0.9.0", "foo=r3", "1.0.0-foo=r3", "0.9.0-foo", "bar", "1.0.0-bar"},
		source: []any{"variant", "foo"}, want: []string{"0.9.0-foo", "1.0.0-foo"}},
	{name: "registry-image: pre_releases alone discovers semver tags", tags: []string{"1.0.0-rc.1", "1.0.0", "latest"},
		source: []any{"pre_releases", true}, want: []string{"1.0.0-rc.1", "1.0.0"}},
	{name: "registry-image: variants", tags: []string{"latest=r1", "1.0.0=r1", "0.9.0", "foo=r3", "1.0.0-foo=r3", "0.9.0-foo", "bar", "1.0.0-bar", "0.9.0-bar"},
		source: []any{"semver_constraint", "*", "variant", "foo"}, want: []string{"0.9.0-foo", "1.0.0-foo"}},
}

func TestPeersCheck(t *testing.T) {
	reg := testharness.StartInProcess(t)
	for i, c := range checkCases {
		t.Run(c.name, func(t *testing.T) {
			repo := "check-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			digests := pushTags(t, reg, repo, c.tags)
			var cursor any
			if c.cursor != "" {
				cursor = cursorVersion(c.cursor, digests)
			}
			if c.err != "" {
				request := map[string]any{"source": source(reg, repo, c.source...), "version": cursor}
				if line := failure(t, "check", request, ""); !strings.Contains(line, c.err) {
					t.Errorf("error %q, want %q", line, c.err)
				}
				return
			}
			got := check(t, source(reg, repo, c.source...), cursor)
			var want []api.Version
			for _, key := range c.want {
				tag, _, _ := strings.Cut(key, "#")
				want = append(want, api.Version{Tag: tag, Digest: digests[key]})
			}
			if len(got) != 0 || len(want) != 0 {
				if !reflect.DeepEqual(got, want) {
					t.Errorf("check = %v\nwant %v", got, want)
				}
			}
		})
	}
}

// pushTags pushes each "tag" or "tag=image" and returns the digest of each tag ("tag#1" for the
// first of a tag pushed twice).
func pushTags(t *testing.T, reg *testharness.Registry, repo string, tags []string) map[string]string {
	images := map[string]v1.Image{}
	digests := map[string]string{}
	for i, entry := range tags {
		tag, image, shared := strings.Cut(entry, "=")
		if !shared {
			image = entry + "#" + string(rune('0'+i))
		}
		if images[image] == nil {
			images[image] = labelled(t, repo+"/"+image)
		}
		if old, ok := digests[tag]; ok {
			digests[tag+"#1"] = old
		}
		digests[tag] = reg.Push(t, reg.Ref(repo+":"+tag), images[image]).String()
	}
	return digests
}

func cursorVersion(cursor string, digests map[string]string) api.Version {
	switch {
	case cursor == "bogus":
		return api.Version{Tag: "latest", Digest: "sha256:" + strings.Repeat("0", 64)}
	case strings.HasSuffix(cursor, "@bogus"):
		return api.Version{Tag: strings.TrimSuffix(cursor, "@bogus"), Digest: "sha256:" + strings.Repeat("0", 64)}
	case strings.HasSuffix(cursor, "!"):
		return api.Version{Digest: digests[strings.TrimSuffix(cursor, "!")]}
	default:
		tag, _, _ := strings.Cut(cursor, "#")
		return api.Version{Tag: tag, Digest: digests[cursor]}
	}
}

// getCase: a get of image (a repository:tag of getImages) with params; check asserts the
// work dir and the response.
type getCase struct {
	name    string
	image   string
	source  []any
	params  map[string]any
	check   func(t *testing.T, g gotImage)
	differs string
}

// gotImage is what a get left, with what it fetched.
type gotImage struct {
	dir    string
	resp   api.Response
	stderr string
	ref    string // repository:tag
	digest v1.Hash
	img    v1.Image
	reg    *testharness.Registry
}

func (g gotImage) file(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(g.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func (g gotImage) only(t *testing.T, present []string, absent ...string) {
	t.Helper()
	for _, name := range present {
		if !exists(g.dir, name) {
			t.Errorf("%s was not written", name)
		}
	}
	for _, name := range absent {
		if exists(g.dir, name) {
			t.Errorf("%s was written", name)
		}
	}
}

var getCases = []getCase{
	{name: "docker-image: in writes repository, tag, digest, image-id, metadata.json and docker_inspect.json",
		image: "metadata:latest", params: nil,
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"repository", "tag", "digest", "image-id", "metadata.json", "docker_inspect.json", "rootfs"}, "image.tar", "image", "rootfs.tar")
			configDigest, _ := g.img.ConfigName()
			if g.file(t, "image-id") != configDigest.String() || g.file(t, "digest") != g.digest.String() || g.file(t, "tag") != "latest" {
				t.Errorf("image-id %q, digest %q, tag %q", g.file(t, "image-id"), g.file(t, "digest"), g.file(t, "tag"))
			}
			var inspect []struct {
				Id          string
				RepoTags    []string
				RepoDigests []string
				Config      struct {
					Labels map[string]string
					Env    []string
					User   string
				}
			}
			jsonFile(t, filepath.Join(g.dir, "docker_inspect.json"), &inspect)
			if len(inspect) != 1 || inspect[0].Config.Labels["com.example.foo"] != "bar" || inspect[0].Config.User != "someuser" ||
				inspect[0].Id != configDigest.String() || inspect[0].RepoTags[0] != g.ref ||
				inspect[0].RepoDigests[0] != strings.TrimSuffix(g.ref, ":latest")+"@"+g.digest.String() {
				t.Errorf("docker_inspect.json = %+v", inspect)
			}
		}},
	{name: "docker-image: save: true writes image, a docker archive tagged repository:tag, and only that, fetched once",
		image: "metadata:latest", params: map[string]any{"save": true},
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"image", "metadata.json"}, "image.tar", "rootfs", "rootfs.tar")
			tag := mustTag(t, g.ref)
			saved, err := tarball.ImageFromPath(filepath.Join(g.dir, "image"), &tag)
			if err != nil {
				t.Fatalf("image: %v", err)
			}
			want, _ := g.img.ConfigName()
			if got, _ := saved.ConfigName(); got != want {
				t.Errorf("image holds config %s, want %s", got, want)
			}
			if n := strings.Count(g.stderr, "downloaded "); n != 1 {
				t.Errorf("the download is logged %d times, want once:\n%s", n, g.stderr)
			}
		}},
	{name: "docker-image: rootfs: true writes rootfs.tar (the flattened filesystem), rootfs/ and metadata.json",
		image: "filesystem:latest", params: map[string]any{"rootfs": true},
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"rootfs.tar", "rootfs", "metadata.json"}, "image.tar", "image")
			headers, contents := tarFiles(t, filepath.Join(g.dir, "rootfs.tar"))
			assertFlattened(t, "rootfs.tar", func(name string) (string, bool) {
				if c, ok := contents[name]; ok {
					return c, true
				}
				_, ok := headers[name]
				return "", ok
			})
			if h := headers["home/alex/birthday"]; h == nil || h.Mode&0o7777 != 0o603 || !h.ModTime.Equal(birthday) || h.Uid != 1000 || h.Gid != 1000 {
				t.Errorf("rootfs.tar home/alex/birthday: %+v", h)
			}
			if h := headers["bin/busybox"]; h == nil || h.Mode&0o111 == 0 {
				t.Errorf("rootfs.tar bin/busybox: %+v", h)
			}
		}},
	{name: "docker-image: skip_download: true writes repository, tag and digest, no image",
		image: "metadata:latest", params: map[string]any{"skip_download": true, "save": true, "rootfs": true},
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"repository", "tag", "digest"}, "image", "rootfs", "rootfs.tar", "image.tar", "metadata.json")
		}},
	{name: "registry-image: metadata.json captures env and user", image: "metadata:latest", params: map[string]any{"format": "rootfs"},
		check: func(t *testing.T, g gotImage) {
			var meta struct {
				User       string
				Env        []string
				Entrypoint []string
				Cmd        []string
			}
			jsonFile(t, filepath.Join(g.dir, "metadata.json"), &meta)
			if meta.User != "someuser" || !reflect.DeepEqual(meta.Env, []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FOO=1"}) {
				t.Errorf("metadata.json = %+v", meta)
			}
		}},
	{name: "registry-image: metadata.json captures entrypoint and cmd", image: "metadata:latest", params: map[string]any{"format": "rootfs"},
		check: func(t *testing.T, g gotImage) {
			var meta struct{ Entrypoint, Cmd []string }
			jsonFile(t, filepath.Join(g.dir, "metadata.json"), &meta)
			if !reflect.DeepEqual(meta.Entrypoint, []string{"/bin/sh"}) || !reflect.DeepEqual(meta.Cmd, []string{"-c", "echo hello world"}) {
				t.Errorf("metadata.json = %+v", meta)
			}
		}},
	{name: "registry-image: the response has repository and tag", image: "metadata:latest", params: map[string]any{"skip_download": true},
		differs: "digest, platform and size follow them",
		check: func(t *testing.T, g gotImage) {
			if g.resp.Version.Digest != g.digest.String() || len(g.resp.Metadata) < 2 ||
				g.resp.Metadata[0] != (api.MetadataField{Name: "repository", Value: strings.TrimSuffix(g.ref, ":latest")}) ||
				g.resp.Metadata[1] != (api.MetadataField{Name: "tag", Value: "latest"}) {
				t.Errorf("response %+v", g.resp)
			}
		}},
	{name: "registry-image: label_regex and annotation_regex add matching labels and annotations to the metadata, sorted",
		image: "metadata:latest", params: map[string]any{"skip_download": true},
		source: []any{"label_regex", `^com\.example\.`, "annotation_regex", `^com\.example\.`},
		check: func(t *testing.T, g gotImage) {
			if metadata(g.resp, "com.example.foo") != "bar" || metadata(g.resp, "com.example.build") != "123" ||
				metadata(g.resp, "org.other.baz") != "" || metadata(g.resp, "org.internal") != "" {
				t.Errorf("response metadata %+v", g.resp.Metadata)
			}
		}},
	{name: "registry-image: file permissions, mtimes and owners kept; whiteouts, removed hard-link targets and replaced symlinks",
		image: "filesystem:latest", params: map[string]any{"format": "rootfs"},
		check: func(t *testing.T, g gotImage) {
			rootfs := filepath.Join(g.dir, "rootfs")
			assertFlattened(t, "rootfs/", func(name string) (string, bool) {
				info, err := os.Lstat(filepath.Join(rootfs, name))
				if err != nil {
					return "", false
				}
				if !info.Mode().IsRegular() {
					return "", true
				}
				data, _ := os.ReadFile(filepath.Join(rootfs, name))
				return string(data), true
			})
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(rootfs, "home/alex/birthday"), &st); err != nil || st.Mode&0o7777 != 0o603 ||
				st.Uid != 1000 || st.Gid != 1000 || st.Mtim.Sec != birthday.Unix() {
				t.Errorf("rootfs/home/alex/birthday: %+v %v", st, err)
			}
		}},
	{name: "registry-image: zstd-compressed layers are decompressed (rootfs/ and rootfs.tar)",
		image: "zstd:latest", params: map[string]any{"format": "rootfs", "rootfs": true},
		check: func(t *testing.T, g gotImage) {
			_, contents := tarFiles(t, filepath.Join(g.dir, "rootfs.tar"))
			if got := g.file(t, "rootfs/zstd.txt"); got != "decompressed from zstd\n" || contents["zstd.txt"] != got {
				t.Errorf("rootfs/zstd.txt %q, in rootfs.tar %q", got, contents["zstd.txt"])
			}
		}},
	{name: "registry-image: format oci saves image.tar instead of rootfs/, with the image's config",
		image: "metadata:latest", params: map[string]any{"format": "oci"},
		differs: "image.tar is an OCI archive (oci-layout, index.json), not go-containerregistry's docker-style tarball; this resource's put, skopeo, podman and docker 25+ load it",
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"image.tar", "labels.json"}, "rootfs", "manifest.json")
			assertSkopeoDigest(t, "oci-archive:"+filepath.Join(g.dir, "image.tar"), g.digest)
		}},
	{name: "registry-image: format oci-layout of an index saves oci/ with the whole index",
		image: "multi:latest", params: map[string]any{"format": "oci-layout"},
		differs: "oci/index.json lists the index (named by the ref annotation), so its own hash is not the version's digest; a put of oci/ pushes the same index again",
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"oci/oci-layout", "oci/index.json", "oci/blobs/sha256/" + g.digest.Hex}, "oci/single-image-digest")
			if resp := put(t, g.dir, source(g.reg, "mirrored"), map[string]any{"image": "oci"}); resp.Version.Digest != g.digest.String() {
				t.Errorf("a put of oci/ pushed %s, want the whole index %s", resp.Version.Digest, g.digest)
			}
		}},
	{name: "registry-image: the digest, tag and repository files hold exactly the version's",
		image: "metadata:tagged", params: map[string]any{"skip_download": true},
		check: func(t *testing.T, g gotImage) {
			if g.file(t, "digest") != g.digest.String() || g.file(t, "tag") != "tagged" || g.file(t, "repository") != strings.TrimSuffix(g.ref, ":tagged") {
				t.Errorf("digest %q tag %q repository %q", g.file(t, "digest"), g.file(t, "tag"), g.file(t, "repository"))
			}
		}},
	{name: "registry-image: skip_download writes no rootfs/, manifest.json or image.tar, and the tag and digest files",
		image: "metadata:latest", params: map[string]any{"skip_download": true, "format": "rootfs"},
		check: func(t *testing.T, g gotImage) {
			g.only(t, []string{"tag", "digest"}, "rootfs", "manifest.json", "image.tar")
		}},
}

// assertFlattened checks the filesystem image's flattening, read through lookup (content of a
// regular file, and whether the path exists).
func assertFlattened(t *testing.T, what string, lookup func(name string) (string, bool)) {
	t.Helper()
	for name, want := range map[string]string{
		"top-dir-1/nested-file": "x", "top-dir-1/nested-dir/file-here": "x", "hardlink-test/hardlink-file": "linked\n",
		"a": "symlinked\n", "b": "replaced\n",
	} {
		if got, ok := lookup(name); !ok || got != want {
			t.Errorf("%s %s = %q (there: %v), want %q", what, name, got, ok, want)
		}
	}
	for _, name := range []string{"top-dir-1/nested-dir/file-gone", "top-dir-2", "hardlink-test/orig", "top-dir-1/nested-dir/.wh.file-gone"} {
		if _, ok := lookup(name); ok {
			t.Errorf("%s has %s, removed by a later layer", what, name)
		}
	}
	if got, ok := lookup("top-dir-1/nested-dir/file-then-dir"); !ok || got != "" {
		t.Errorf("%s top-dir-1/nested-dir/file-then-dir should be a directory, got %q (there: %v)", what, got, ok)
	}
}

func TestPeersGet(t *testing.T) {
	reg := testharness.StartInProcess(t)
	images := map[string]v1.Image{"metadata:latest": metadataImage(t), "metadata:tagged": metadataImage(t),
		"filesystem:latest": filesystemImage(t), "zstd:latest": zstdImage(t)}
	digests := map[string]v1.Hash{}
	for ref, img := range images {
		digests[ref] = reg.Push(t, reg.Ref(ref), img)
	}
	digests["multi:latest"] = reg.PushIndex(t, reg.Ref("multi:latest"), testharness.TwoPlatformIndex(t))
	for _, c := range getCases {
		t.Run(c.name, func(t *testing.T) {
			repo, tag, _ := strings.Cut(c.image, ":")
			dir := t.TempDir()
			res := testharness.Run(t, "in", map[string]any{
				"source":  source(reg, repo, append([]any{"tag", tag}, c.source...)...),
				"version": api.Version{Tag: tag, Digest: digests[c.image].String()}, "params": c.params,
			}, dir)
			g := gotImage{dir: dir, stderr: res.Stderr, ref: reg.Ref(c.image), digest: digests[c.image], img: images[c.image], reg: reg}
			res.JSON(t, &g.resp)
			c.check(t, g)
		})
	}
}

// TestPeersGetRootfsTarIsChecked: rootfs: true through a registry that flips a byte of a layer
// fails and leaves neither rootfs.tar nor rootfs/ (docker-image-resource's rootfs.tar, made of
// checked layers only).
func TestPeersGetRootfsTarIsChecked(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := filesystemImage(t)
	digest := reg.Push(t, reg.Ref("filesystem:latest"), img)
	layer := lastLayer(t, img)
	layerDigest := digestOf(t, layer)
	tampered := reg.WithTamper(t, func(path string, body []byte) []byte {
		if strings.HasSuffix(path, "/blobs/"+layerDigest.String()) && len(body) > 100 {
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 0xff
		}
		return body
	})
	dir := t.TempDir()
	line := failure(t, "in", map[string]any{"source": source(tampered, "filesystem"), "version": api.Version{Tag: "latest", Digest: digest.String()},
		"params": map[string]any{"rootfs": true}}, dir)
	if !strings.Contains(line, layerDigest.String()) {
		t.Errorf("the error does not name the layer %s: %s", layerDigest, line)
	}
	for _, name := range []string{"rootfs.tar", "rootfs"} {
		if exists(dir, name) {
			t.Errorf("a failed get left %s", name)
		}
	}
}

// putCase pushes a ready-made image (registry-image-resource's put); files are written into the
// work dir first ("image.tar" as a docker-style tarball of the case's image); tags are the
// repository's tags that must point to the pushed image afterwards, others must not.
type putCase struct {
	name     string
	existing []string // tags the repository has before the put (other images)
	files    map[string]string
	source   []any
	params   map[string]any
	tags     []string
	absent   []string
	err      string // the put fails with this in its last line
	differs  string
}

var putCases = []putCase{
	{name: "registry-image: pushing a docker-style image tarball to the source tag", source: []any{"tag", "latest"},
		params: map[string]any{"image": "image.tar"}, tags: []string{"latest"}},
	{name: "registry-image: the image as a glob matching one file", files: map[string]string{"image-*.tar": ""},
		params: map[string]any{"image": "image-*.tar"}, tags: []string{"latest"},
		differs: "with no tag anywhere, latest is pushed (docker-image-resource's default); registry-image-resource fails with \"no tag specified\""},
	{name: "registry-image: a glob matching no file fails", params: map[string]any{"image": "nomatch.tar"},
		err: `params.image: "nomatch.tar" matched 0 files, expected exactly one`},
	{name: "registry-image: a glob matching two files fails", files: map[string]string{"image-2.tar": "x", "image-*.tar": ""},
		params: map[string]any{"image": "imag*.tar"}, err: `params.image: "imag*.tar" matched 2 files, expected exactly one`},
	{name: "registry-image: additional_tags (newline separated) in addition to the source tag", source: []any{"tag", "v1"},
		files: map[string]string{"tags": "additional\ntags\n"}, params: map[string]any{"image": "image.tar", "additional_tags": "tags"},
		tags: []string{"v1", "additional", "tags"}, absent: []string{"latest"}},
	{name: "registry-image: tag_prefix prefixes additional_tags", source: []any{"tag", "v1"},
		files:  map[string]string{"tags": "additional\ntags\n"},
		params: map[string]any{"image": "image.tar", "additional_tags": "tags", "tag_prefix": "dev-"},
		tags:   []string{"v1", "dev-additional", "dev-tags"}, absent: []string{"additional"}},
	{name: "registry-image: version as the tag", params: map[string]any{"image": "image.tar", "version": "1.2.3"}, tags: []string{"1.2.3"}, absent: []string{"latest"}},
	{name: "registry-image: a version that is not semver", params: map[string]any{"image": "image.tar", "version": "hoogily-boogily"},
		tags: []string{"hoogily-boogily"}, differs: "pushed as a tag; registry-image-resource refuses it (bump_aliases needs semver here too)"},
	{name: "registry-image: version with the source's variant", source: []any{"variant", "ubuntu"},
		params: map[string]any{"image": "image.tar", "version": "1.2.3"}, tags: []string{"1.2.3-ubuntu"}},
	{name: "registry-image: bump_aliases with no existing image", params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true},
		tags: []string{"1.2.3", "1.2", "1", "latest"}},
	{name: "registry-image: bump_aliases does not move aliases for a prerelease", params: map[string]any{"image": "image.tar", "version": "1.2.3-alpha.1", "bump_aliases": true},
		tags: []string{"1.2.3-alpha.1"}, absent: []string{"1.2", "1", "latest"}},
	{name: "registry-image: bump_aliases when only older versions exist", existing: []string{"1.2.2"},
		params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true}, tags: []string{"1.2.3", "1.2", "1", "latest"}},
	{name: "registry-image: bump_aliases moves nothing when a newer patch exists", existing: []string{"1.2.4"},
		params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true}, tags: []string{"1.2.3"}, absent: []string{"1.2", "1", "latest"}},
	{name: "registry-image: bump_aliases keeps the major when a newer minor exists", existing: []string{"1.3.0"},
		params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true}, tags: []string{"1.2.3", "1.2"}, absent: []string{"1", "latest"}},
	{name: "registry-image: bump_aliases moves minor and major, not latest, under a newer major", existing: []string{"2.0.0"},
		params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true}, tags: []string{"1.2.3", "1.2", "1"}, absent: []string{"latest"}},
	{name: "registry-image: bump_aliases of a variant ignores other variants and plain versions", existing: []string{"1.3.0", "2.0.0-goodbye"},
		source: []any{"variant", "lts"}, params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true},
		tags: []string{"1.2.3-lts", "1.2-lts", "1-lts", "lts"}},
	{name: "registry-image: bump_aliases of a variant under a newer major of it", existing: []string{"2.0.0-hello"},
		source: []any{"variant", "hello"}, params: map[string]any{"image": "image.tar", "version": "1.2.3", "bump_aliases": true},
		tags: []string{"1.2.3-hello", "1.2-hello", "1-hello"}, absent: []string{"hello"}},
	{name: "docker-image: tag (deprecated) names the tag file", files: map[string]string{"tag": "foo"},
		params: map[string]any{"image": "image.tar", "tag": "tag"}, tags: []string{"foo"}, absent: []string{"latest"}},
	{name: "docker-image: tag_file", files: map[string]string{"tag": "foo"},
		params: map[string]any{"image": "image.tar", "tag_file": "tag"}, tags: []string{"foo"}},
	{name: "docker-image: tag_file wins over tag", files: map[string]string{"tag": "foo"},
		params: map[string]any{"image": "image.tar", "tag": "doesnotexist", "tag_file": "tag"}, tags: []string{"foo"}},
	{name: "docker-image: additional_tags a b c beside the source tag", files: map[string]string{"tags": "a b c"},
		params: map[string]any{"image": "image.tar", "additional_tags": "tags"}, tags: []string{"latest", "a", "b", "c"}},
	{name: "docker-image: tag_prefix goes on the tag file's tag", files: map[string]string{"tag": "1.0", "tags": "extra"},
		params: map[string]any{"image": "image.tar", "tag_file": "tag", "tag_prefix": "v", "additional_tags": "tags"}, tags: []string{"v1.0", "extra"},
		absent: []string{"1.0", "vextra"}},
}

func TestPeersPut(t *testing.T) {
	reg := testharness.StartInProcess(t)
	img := labelled(t, "pushed")
	other := labelled(t, "other")
	for i, c := range putCases {
		t.Run(c.name, func(t *testing.T) {
			repo := "put-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			for _, tag := range c.existing {
				reg.Push(t, reg.Ref(repo+":"+tag), other)
			}
			work := t.TempDir()
			testharness.SaveDockerArchive(t, img, filepath.Join(work, "image.tar"), reg.Ref(repo+":doesnt-matter"))
			for name, content := range c.files {
				if name == "image-*.tar" {
					os.Rename(filepath.Join(work, "image.tar"), filepath.Join(work, "image-1.tar"))
					continue
				}
				writeFile(t, filepath.Join(work, name), content)
			}
			request := map[string]any{"source": source(reg, repo, c.source...), "params": c.params}
			if c.err != "" {
				if line := failure(t, "out", request, work); !strings.Contains(line, c.err) {
					t.Errorf("error %q, want %q", line, c.err)
				}
				return
			}
			var resp api.Response
			testharness.Run(t, "out", request, work).JSON(t, &resp)
			archived, err := tarball.ImageFromPath(filepath.Join(work, imageFile(c)), nil)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := archived.Digest() // the docker archive's manifest, as registry-image-resource pushes it
			if resp.Version.Digest != want.String() {
				t.Errorf("pushed %s, want the image's digest %s", resp.Version.Digest, want)
			}
			if got := tagsOf(t, reg, repo, want, append(c.tags, c.absent...)...); !reflect.DeepEqual(got, c.tags) {
				t.Errorf("tags on the image: %v, want %v", got, c.tags)
			}
		})
	}
}

func imageFile(c putCase) string {
	if _, glob := c.files["image-*.tar"]; glob {
		return "image-1.tar"
	}
	return "image.tar"
}

func mustTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// buildCase is a docker-image-resource put that builds: files are written into the work dir
// ("{{BASE}}" and "{{BASE2}}" replaced by the bases' references), next to "base" and "base2", get
// directories the build loads. source entries with a nil value remove the field.
type buildCase struct {
	name    string
	files   map[string]string
	source  []any
	params  map[string]any
	env     []string
	check   func(t *testing.T, b builtImage)
	err     string
	differs string
}

// builtImage is what a put built and pushed.
type builtImage struct {
	resp   api.Response
	img    v1.Image
	files  map[string]string
	stderr string
}

const argsDockerfile = "FROM {{BASE}}\nARG arg1\nARG arg2\nARG arg3\nRUN printf '%s|' \"$arg1\" \"$arg2\" \"$arg3\" \"$http_proxy\" \"$https_proxy\" \"$no_proxy\" > /args\n"

// concourseArgs are docker-image-resource's eleven build_args naming the Concourse variables.
var concourseArgs = map[string]any{
	"arg01": "no envvars", "arg02": "this is the:\n$BUILD_ID", "arg03": "this is the:\n$BUILD_NAME",
	"arg04": "this is the:\n$BUILD_JOB_NAME", "arg05": "this is the:\n$BUILD_PIPELINE_NAME", "arg06": "this is the:\n$BUILD_TEAM_NAME",
	"arg07": "this is the:\n$ATC_EXTERNAL_URL", "arg08": "this syntax also works:\n${ATC_EXTERNAL_URL}",
	"arg09": "multiple envvars in one arg also works:\n$BUILD_ID\n$BUILD_NAME", "arg10": "$BUILD_ID at the beginning of the arg",
	"arg11": "at the end of the arg is the $BUILD_ID",
}

func concourseArgsDockerfile() string {
	var b strings.Builder
	b.WriteString("FROM {{BASE}}\n")
	for i := 1; i <= 11; i++ {
		b.WriteString(fmt.Sprintf("ARG arg%02d\n", i))
	}
	b.WriteString("RUN for a in \"$arg01\" \"$arg02\" \"$arg03\" \"$arg04\" \"$arg05\" \"$arg06\" \"$arg07\" \"$arg08\" \"$arg09\" \"$arg10\" \"$arg11\"; do printf '%s|' \"$a\"; done > /args\n")
	return b.String()
}

func concourseEnvOf(name string) string { return "value of the:\n" + name + " envvar" }

var buildCases = []buildCase{
	{name: "docker-image: build_args with spaces and newlines, after the environment's proxy settings",
		files:  map[string]string{"ctx/Dockerfile": argsDockerfile},
		params: map[string]any{"build": "ctx", "build_args": map[string]any{"arg1": "arg with space", "arg2": "arg with\nnewline", "arg3": "normal"}},
		env: []string{"no_proxy=10.1.1.1", "http_proxy=http://admin:verysecret@my-proxy.com:8080", "https_proxy=http://another.proxy.net",
			"NO_PROXY=", "HTTP_PROXY=", "HTTPS_PROXY="},
		differs: "the log names the proxy args without their values (docker-image-resource printed the password)",
		check: func(t *testing.T, b builtImage) {
			want := "arg with space|arg with\nnewline|normal|http://admin:verysecret@my-proxy.com:8080|http://another.proxy.net|10.1.1.1|"
			if got := b.files["args"]; got != want {
				t.Errorf("/args = %q, want %q", got, want)
			}
			if strings.Contains(b.stderr, "verysecret") {
				t.Error("the proxy password is in the log")
			}
		}},
	{name: "docker-image: build_args_file, a JSON file (their fixture)",
		files: map[string]string{"ctx/Dockerfile": argsDockerfile,
			"build_args": "{\n  \"arg1\": \"arg with space\",\n  \"arg2\": \"arg with\\nnewline\",\n  \"arg3\": \"normal\"\n}"},
		params: map[string]any{"build": "ctx", "build_args_file": "build_args"},
		check: func(t *testing.T, b builtImage) {
			if got, want := b.files["args"], "arg with space|arg with\nnewline|normal||||"; got != want {
				t.Errorf("/args = %q, want %q", got, want)
			}
		}},
	{name: "docker-image: a malformed build_args_file fails naming it",
		files:  map[string]string{"ctx/Dockerfile": argsDockerfile, "build_args_malformed": "{foo}"},
		params: map[string]any{"build": "ctx", "build_args_file": "build_args_malformed"},
		err:    "params.build_args_file: build_args_malformed: expected a JSON object"},
	{name: "docker-image: build_args expand the six Concourse variables, $NAME and ${NAME}",
		files:  map[string]string{"ctx/Dockerfile": concourseArgsDockerfile()},
		params: map[string]any{"build": "ctx", "build_args": concourseArgs},
		env: []string{"BUILD_ID=" + concourseEnvOf("BUILD_ID"), "BUILD_NAME=" + concourseEnvOf("BUILD_NAME"),
			"BUILD_JOB_NAME=" + concourseEnvOf("BUILD_JOB_NAME"), "BUILD_PIPELINE_NAME=" + concourseEnvOf("BUILD_PIPELINE_NAME"),
			"BUILD_TEAM_NAME=" + concourseEnvOf("BUILD_TEAM_NAME"), "ATC_EXTERNAL_URL=" + concourseEnvOf("ATC_EXTERNAL_URL")},
		check: func(t *testing.T, b builtImage) {
			id, name := concourseEnvOf("BUILD_ID"), concourseEnvOf("BUILD_NAME")
			want := strings.Join([]string{"no envvars", "this is the:\n" + id, "this is the:\n" + name,
				"this is the:\n" + concourseEnvOf("BUILD_JOB_NAME"), "this is the:\n" + concourseEnvOf("BUILD_PIPELINE_NAME"),
				"this is the:\n" + concourseEnvOf("BUILD_TEAM_NAME"), "this is the:\n" + concourseEnvOf("ATC_EXTERNAL_URL"),
				"this syntax also works:\n" + concourseEnvOf("ATC_EXTERNAL_URL"),
				"multiple envvars in one arg also works:\n" + id + "\n" + name,
				id + " at the beginning of the arg", "at the end of the arg is the " + id, ""}, "|")
			if got := b.files["args"]; got != want {
				t.Errorf("/args =\n%s\nwant\n%s", got, want)
			}
		}},
	{name: "docker-image: secrets from the environment and from files (a path with spaces), in no layer",
		files: map[string]string{"ctx/Dockerfile": "FROM {{BASE}}\nRUN --mount=type=secret,id=secret1 --mount=type=secret,id=secret3 " +
			"sh -c 'wc -c < /run/secrets/secret1 > /s1; wc -c < /run/secrets/secret3 > /s3'\n",
			"secrets/path with a space in it.txt": "file-s3cr3t-value"},
		params: map[string]any{"build": "ctx", "secrets": map[string]any{
			"secret1": map[string]any{"env": "GITHUB_TOKEN"}, "secret3": map[string]any{"source": "secrets/path with a space in it.txt"}}},
		env: []string{"GITHUB_TOKEN=env-s3cr3t"},
		check: func(t *testing.T, b builtImage) {
			if strings.TrimSpace(b.files["s1"]) != "10" || strings.TrimSpace(b.files["s3"]) != "17" {
				t.Errorf("/s1 %q /s3 %q: the secrets were not mounted", b.files["s1"], b.files["s3"])
			}
			for _, secret := range []string{"env-s3cr3t", "file-s3cr3t-value"} {
				assertNowhere(t, secret, b.img, testharness.Result{Stderr: b.stderr})
			}
		}},
	{name: "docker-image: labels (one with a newline) and labels_file; max_concurrent_*, startup_timeout accepted",
		files:  map[string]string{"ctx/Dockerfile": "FROM {{BASE}}\n", "labels.json": `{ "commit": "b4d4823", "version": "1.0.3" }`},
		source: []any{"max_concurrent_downloads", 7, "max_concurrent_uploads", 1, "startup_timeout", "5"},
		params: map[string]any{"build": "ctx", "labels": map[string]any{"label1": "foo", "label2": "bar\nspam", "label3": "eggs eggs eggs"},
			"labels_file": "labels.json"},
		check: func(t *testing.T, b builtImage) {
			cfg, _ := b.img.ConfigFile()
			for k, v := range map[string]string{"label1": "foo", "label2": "bar\nspam", "label3": "eggs eggs eggs", "commit": "b4d4823", "version": "1.0.3"} {
				if cfg.Config.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, cfg.Config.Labels[k], v)
				}
			}
			if !strings.Contains(b.stderr, "source.startup_timeout: has no effect here") {
				t.Error("no note for startup_timeout")
			}
		}},
	{name: "docker-image: target_name builds that stage of a dockerfile named by the dockerfile param",
		files:  map[string]string{"ctx/Dockerfile.multi": "FROM {{BASE}} AS test\nRUN echo test > /stage\nFROM {{BASE}}\nRUN echo final > /stage\n"},
		params: map[string]any{"build": "ctx", "dockerfile": "ctx/Dockerfile.multi", "target_name": "test"},
		check: func(t *testing.T, b builtImage) {
			if got := b.files["stage"]; got != "test\n" {
				t.Errorf("/stage = %q, want the test stage's", got)
			}
		}},
	{name: "docker-image: load_bases, each FROM served by its base with no pull",
		files:  map[string]string{"ctx/Dockerfile": "FROM {{BASE}} AS one\nFROM {{BASE2}}\nCOPY --from=one /etc/passwd /one-passwd\n"},
		params: map[string]any{"build": "ctx", "load_base": nil, "load_bases": []string{"base", "base2"}},
		check: func(t *testing.T, b builtImage) {
			if !strings.Contains(b.files["one-passwd"], "root:") {
				t.Errorf("/one-passwd = %q", b.files["one-passwd"])
			}
			if bases := metadataAll(b.resp, "base"); len(bases) != 2 {
				t.Errorf("base metadata %v, want both bases", bases)
			}
		}},
	{name: "registry-image: a get with format oci (a docker-style image.tar) as load_base: the base label and metadata carry the get's digest",
		files:  map[string]string{"ctx/Dockerfile": "FROM {{BASE3}}\n"},
		params: map[string]any{"build": "ctx", "load_base": "base3"},
		check: func(t *testing.T, b builtImage) {
			cfg, _ := b.img.ConfigFile()
			want := b.files["@base3-digest"]
			if got := cfg.Config.Labels["org.opencontainers.image.base.digest"]; got != want {
				t.Errorf("base.digest label %q, want the get's digest %q", got, want)
			}
			if bases := metadataAll(b.resp, "base"); len(bases) != 1 || !strings.HasSuffix(bases[0], "@"+want) {
				t.Errorf("base metadata %v, want @%s", bases, want)
			}
		}},
	{name: "docker-image: cache: true when the image does not exist yet builds anyway",
		files:  map[string]string{"ctx/Dockerfile": "FROM {{BASE}}\nRUN echo built > /built\n"},
		params: map[string]any{"build": "ctx", "cache": true},
		check: func(t *testing.T, b builtImage) {
			if b.files["built"] != "built\n" {
				t.Errorf("/built = %q", b.files["built"])
			}
		}},
	{name: "docker-image: insecure_registries names the plain-HTTP registry",
		files:  map[string]string{"ctx/Dockerfile": "FROM {{BASE}}\n"},
		source: []any{"insecure", nil, "insecure_registries", "{{HOST}}"},
		params: map[string]any{"build": "ctx"},
		check:  func(t *testing.T, b builtImage) {}},
}

// metadataAll are the values of every metadata field with the name.
func metadataAll(resp api.Response, name string) []string {
	var out []string
	for _, m := range resp.Metadata {
		if m.Name == name {
			out = append(out, m.Value)
		}
	}
	return out
}

func TestPeersBuild(t *testing.T) {
	reg := testharness.StartInProcess(t)
	other := labelled(t, "base2")
	published := labelled(t, "base3")
	publishedDigest := reg.Push(t, reg.Ref("library/published:1"), published)
	for i, c := range buildCases {
		t.Run(c.name, func(t *testing.T) {
			work := t.TempDir()
			baseRef := saveBase(t, reg, filepath.Join(work, "base"))
			saveLikeDockerImageResource(t, other, filepath.Join(work, "base2"), reg.Host+"/library/other", "2")
			saveLikeRegistryImageResource(t, published, filepath.Join(work, "base3"), reg.Host+"/library/published", "1", publishedDigest)
			for name, content := range c.files {
				content = strings.NewReplacer("{{BASE}}", baseRef, "{{BASE2}}", reg.Ref("library/other:2"), "{{BASE3}}", reg.Ref("library/published:1")).Replace(content)
				writeFile(t, filepath.Join(work, name), content)
			}
			repo := "built-" + string(rune('a'+i))
			src := source(reg, repo)
			for j := 0; j+1 < len(c.source); j += 2 {
				key := c.source[j].(string)
				switch v := c.source[j+1]; {
				case v == nil:
					delete(src, key)
				case v == "{{HOST}}":
					src[key] = []string{reg.Host}
				default:
					src[key] = v
				}
			}
			params := map[string]any{"load_base": "base"}
			for k, v := range c.params {
				if v == nil {
					delete(params, k)
				} else {
					params[k] = v
				}
			}
			request := map[string]any{"source": src, "params": params}
			if c.err != "" {
				if line := failure(t, "out", request, work, c.env...); !strings.Contains(line, c.err) {
					t.Errorf("error %q, want %q", line, c.err)
				}
				return
			}
			res := testharness.Run(t, "out", request, work, c.env...)
			b := builtImage{stderr: res.Stderr}
			res.JSON(t, &b.resp)
			b.img = reg.Image(t, reg.Ref(repo+"@"+b.resp.Version.Digest))
			b.files = imageFiles(t, b.img)
			b.files["@base3-digest"] = publishedDigest.String()
			c.check(t, b)
		})
	}
}

// saveLikeRegistryImageResource writes what registry-image-resource's get with format: oci
// leaves: image.tar as a docker-style tarball (go-containerregistry's), repository, tag, digest.
func saveLikeRegistryImageResource(t *testing.T, img v1.Image, dir, repository, tag string, digest v1.Hash) {
	t.Helper()
	testharness.SaveDockerArchive(t, img, filepath.Join(mkdir(t, dir), "image.tar"), repository+":"+tag)
	writeFile(t, filepath.Join(dir, "repository"), repository)
	writeFile(t, filepath.Join(dir, "tag"), tag)
	writeFile(t, filepath.Join(dir, "digest"), digest.String())
}

// refusalCase: a request a peer takes that we refuse on purpose, in one line naming the field and
// why (docs/compatibility.md lists them).
type refusalCase struct {
	name   string
	step   string
	source map[string]any
	params map[string]any
	err    string
}

var refusalCases = []refusalCase{
	{name: "docker-image: pull_repository alone", step: "out", params: map[string]any{"pull_repository": "busybox", "pull_tag": "1.36"},
		err: "params.pull_repository: not supported (deprecated in docker-image-resource): get the image with save: true and push it with params.load"},
	{name: "registry-image: azure_acr", step: "check", source: map[string]any{"azure_acr": true},
		err: "source.azure_acr: not supported yet: ACR managed-identity sign-in is not implemented: set username and password (an ACR token)"},
	{name: "registry-image: content_trust", step: "out", source: map[string]any{"content_trust": map[string]any{"repository_key_id": "k"}},
		params: map[string]any{"image": "image.tar"}, err: "source.content_trust: not supported yet: Notary (Docker Content Trust) signing is not implemented"},
	{name: "registry-image: created_at_sort", step: "check", source: map[string]any{"tag_regex": ".*", "created_at_sort": true},
		err: "source.created_at_sort: not supported yet: tag_regex matches are reported in version order (all semver) or by name, never by creation time"},
	{name: "registry-image: pre_release_prefixes", step: "check", source: map[string]any{"pre_releases": true, "pre_release_prefixes": []string{"build"}},
		err: "source.pre_release_prefixes: not supported yet: only alpha, beta and rc suffixes are pre-releases; others are variants"},
	{name: "registry-image: source platform", step: "in", source: map[string]any{"platform": map[string]any{"architecture": "arm64"}},
		err: "source.platform: not supported yet: set platform in the get's params instead"},
}

func TestPeersRefusals(t *testing.T) {
	for _, c := range refusalCases {
		t.Run(c.name, func(t *testing.T) {
			src := map[string]any{"repository": "registry.invalid/app"}
			for k, v := range c.source {
				src[k] = v
			}
			request := map[string]any{"source": src}
			dir := ""
			switch c.step {
			case "in":
				request["version"] = api.Version{Digest: "sha256:" + strings.Repeat("a", 64)}
				dir = t.TempDir()
			case "out":
				request["params"] = c.params
				dir = t.TempDir()
			}
			line := failure(t, c.step, request, dir)
			if line != "ERROR: "+c.err && !strings.HasPrefix(line, "ERROR: "+c.err) {
				t.Errorf("error %q, want %q", line, c.err)
			}
		})
	}
}

// TestPeersTLSAndAuth: registry-image-resource's self-signed registry (the certificate in source,
// or missing), private repository with credentials (and without), and docker-image-resource's
// {domain, cert} ca_certs and additional_private_registries for a FROM in another registry.
func TestPeersTLSAndAuth(t *testing.T) {
	private := testharness.StartDistribution(t)
	img := labelled(t, "private")
	digest := private.Push(t, private.Ref("app:latest"), img)
	version := api.Version{Tag: "latest", Digest: digest.String()}
	pemOnly := source(private, "app")
	withoutCA := source(private, "app", "ca_certs", nil)
	delete(withoutCA, "ca_certs")
	withoutAuth := source(private, "app")
	delete(withoutAuth, "username")
	delete(withoutAuth, "password")
	domainCert := source(private, "app", "ca_certs", []any{map[string]any{"domain": private.Host, "cert": private.CACertPEM}})

	t.Run("registry-image: the certificate in source: check, get and put work", func(t *testing.T) {
		if got := check(t, pemOnly, nil); len(got) != 1 || got[0].Digest != digest.String() {
			t.Errorf("check = %v", got)
		}
		dir, _ := get(t, pemOnly, version, map[string]any{"format": "rootfs"})
		if !exists(dir, "rootfs/bin/busybox") {
			t.Error("no rootfs/bin/busybox")
		}
		work := t.TempDir()
		testharness.SaveOCIArchive(t, img, filepath.Join(work, "image.tar"), "")
		if resp := put(t, work, source(private, "copy"), map[string]any{"image": "image.tar"}); resp.Version.Digest != digest.String() {
			t.Errorf("put pushed %s, want %s", resp.Version.Digest, digest)
		}
	})
	t.Run("registry-image: the certificate missing: get fails", func(t *testing.T) {
		line := failure(t, "in", map[string]any{"source": withoutCA, "version": version}, t.TempDir())
		if !strings.Contains(line, "certificate") {
			t.Errorf("error %q does not say the certificate is not trusted", line)
		}
	})
	t.Run("registry-image: a private repository without credentials: check fails", func(t *testing.T) {
		line := failure(t, "check", map[string]any{"source": withoutAuth}, "")
		if !strings.Contains(strings.ToLower(line), "auth") {
			t.Errorf("error %q does not say authentication failed", line)
		}
	})
	t.Run("docker-image: ca_certs as {domain, cert}", func(t *testing.T) {
		if got := check(t, domainCert, nil); len(got) != 1 || got[0].Digest != digest.String() {
			t.Errorf("check = %v", got)
		}
	})
	t.Run("docker-image: additional_private_registries sign the build's FROM in another registry in", func(t *testing.T) {
		target := testharness.StartInProcess(t)
		work := t.TempDir()
		writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+private.Ref("app:latest")+"\nRUN echo pulled > /pulled\n")
		src := source(target, "built", "ca_certs", []any{map[string]any{"domain": private.Host, "cert": private.CACertPEM}},
			"additional_private_registries", []any{map[string]any{"registry": private.Host, "username": private.Username, "password": private.Password}})
		resp := put(t, work, src, map[string]any{"build": "ctx"})
		files := imageFiles(t, target.Image(t, target.Ref("built@"+resp.Version.Digest)))
		if files["pulled"] != "pulled\n" {
			t.Errorf("/pulled = %q", files["pulled"])
		}
	})
}

// TestPeersMirror: docker-image-resource's and registry-image-resource's registry_mirror: a
// Docker Hub repository (implied library/ namespace included) is read through the mirror; a
// repository naming its registry never touches the mirror.
func TestPeersMirror(t *testing.T) {
	mirror := testharness.StartInProcess(t)
	img := labelled(t, "mirrored")
	digest := mirror.Push(t, mirror.Ref("library/fake-image:latest"), img)
	for name, mirrorField := range map[string]any{
		"docker-image: registry_mirror as a URL":    "http://" + mirror.Host,
		"registry-image: registry_mirror as {host}": map[string]any{"host": mirror.Host},
	} {
		t.Run(name+": a Docker Hub repository is read through the mirror", func(t *testing.T) {
			src := map[string]any{"repository": "fake-image", "registry_mirror": mirrorField, "insecure_registries": []string{mirror.Host}}
			if got := check(t, src, nil); len(got) != 1 || got[0].Digest != digest.String() {
				t.Fatalf("check = %v, want %s", got, digest)
			}
			dir, _ := get(t, src, api.Version{Tag: "latest", Digest: digest.String()}, map[string]any{"format": "oci"})
			assertSkopeoDigest(t, "oci-archive:"+filepath.Join(dir, "image.tar"), digest)
		})
	}
	t.Run("docker-image: a repository naming its registry ignores the mirror", func(t *testing.T) {
		reg := testharness.StartInProcess(t)
		own := reg.Push(t, reg.Ref("some/fake-image:latest"), img)
		src := source(reg, "some/fake-image", "registry_mirror", "https://thisregistrydoesnotexist.nothing")
		if got := check(t, src, nil); len(got) != 1 || got[0].Digest != own.String() {
			t.Fatalf("check = %v, want %s", got, own)
		}
	})
}

// TestPeersCacheFromSavedGet: docker-image-resource's cache_from, directories of gets with
// save: true, beside load_bases: the second build takes every step from the saved image.
func TestPeersCacheFromSavedGet(t *testing.T) {
	reg := testharness.StartInProcess(t)
	work := t.TempDir()
	baseRef := saveBase(t, reg, filepath.Join(work, "base"))
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+baseRef+"\nRUN echo once > /once\n")
	params := map[string]any{"build": "ctx", "load_bases": []string{"base"}}
	first := put(t, work, source(reg, "cached"), params)
	getInto(t, reg, "cached", "latest", mustHash(t, first.Version.Digest), filepath.Join(work, "cache"), map[string]any{"save": true})
	if exists(filepath.Join(work, "cache"), "image.tar") || !exists(filepath.Join(work, "cache"), "image") {
		t.Fatal("the save: true get did not write image alone")
	}
	params["cache_from"] = []string{"cache"}
	res := testharness.Run(t, "out", map[string]any{"source": source(reg, "cached"), "params": params}, work)
	var second api.Response
	res.JSON(t, &second)
	if !strings.Contains(res.Stderr, "every step from the cache image") {
		t.Errorf("cache_from a save: true get did not serve the build:\n%s", res.Stderr)
	}
}

// TestPeersPutOCILayoutIndex: registry-image-resource's put of an OCI layout whose index.json is a
// multi-platform index (as its oci-layout get writes it) pushes that index: the same digest.
func TestPeersPutOCILayoutIndex(t *testing.T) {
	reg := testharness.StartInProcess(t)
	idx := testharness.TwoPlatformIndex(t)
	want, _ := idx.Digest()
	work := t.TempDir()
	if _, err := layout.Write(filepath.Join(work, "multi-arch"), idx); err != nil {
		t.Fatal(err)
	}
	if resp := put(t, work, source(reg, "mirror"), map[string]any{"image": "multi-arch"}); resp.Version.Digest != want.String() {
		t.Errorf("pushed %s, want the index %s", resp.Version.Digest, want)
	}
	if got := reg.Digest(t, reg.Ref("mirror:latest")); got != want {
		t.Errorf("mirror:latest is %s, want %s", got, want)
	}
}
