package e2e

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestDockerImageResourcePipelineUnchanged: a put written for docker-image-resource, its values
// as Concourse sends them (YAML numbers and booleans, ((vars)) as strings), behind a proxy. The
// build gets the args as text, the Concourse variables expanded and nothing else, and the
// container's proxy settings; the image is pushed as the number tag and latest. The second put
// honours cache: "true": every step comes from the first image.
func TestDockerImageResourcePipelineUnchanged(t *testing.T) {
	reg := testharness.StartInProcess(t)
	baseRef := reg.Ref("library/busybox:1.36")
	baseDigest := reg.Push(t, baseRef, testharness.BusyboxImage(t))
	work := t.TempDir()
	getInto(t, reg, "library/busybox", "1.36", baseDigest, filepath.Join(work, "base"), nil)
	copyContext(t, "compat", filepath.Join(work, "ctx"), nil)

	const proxyPassword = "pr0xy-pa55"
	proxy := "http://ci:" + proxyPassword + "@proxy.invalid:3128"
	env := []string{"http_proxy=" + proxy, "no_proxy=127.0.0.1,localhost",
		"HTTP_PROXY=", "https_proxy=", "HTTPS_PROXY=", "NO_PROXY=", "BUILD_ID=1234"}
	request := `{"source": {"repository": ` + mustJSON(t, reg.Host+"/compat") + `, "tag": 3.7},
		"params": {"build": "ctx", "load_base": "base", "docker_buildkit": 1,
			"build_args": {"BASE": ` + mustJSON(t, baseRef) + `, "N": 2, "FLAG": true, "SHELLISH": "${HOME}/x ${FOO:-bar} $BUILD_ID"},
			"tag_as_latest": "true", "cache": "true"}}`

	first := testharness.Run(t, "out", request, work, env...)
	var resp api.Response
	first.JSON(t, &resp)

	for _, tag := range []string{"3.7", "latest"} {
		if got := reg.Digest(t, reg.Ref("compat:"+tag)); got.String() != resp.Version.Digest {
			t.Errorf("compat:%s is %s, the put pushed %s", tag, got, resp.Version.Digest)
		}
	}
	if resp.Version.Tag != "3.7" || metadata(resp, "tags") != "3.7 latest" {
		t.Errorf("version %+v, tags %q", resp.Version, metadata(resp, "tags"))
	}
	img := reg.Image(t, reg.Ref("compat:3.7"))
	want := "N=2\nFLAG=true\nSHELLISH=${HOME}/x ${FOO:-bar} 1234\nhttp_proxy=" + proxy + "\nno_proxy=127.0.0.1,localhost\n"
	if got := imageFiles(t, img)["compat.txt"]; got != want {
		t.Errorf("/compat.txt =\n%s\nwant\n%s", got, want)
	}
	for _, line := range []string{
		"build args from the environment: http_proxy, no_proxy",
		"params.docker_buildkit: has no effect here",
	} {
		if !strings.Contains(first.Stderr, line) {
			t.Errorf("the log lacks %q", line)
		}
	}
	config, _ := img.RawConfigFile()
	if strings.Contains(first.Stderr, proxyPassword) || bytes.Contains(config, []byte(proxyPassword)) {
		t.Error("the proxy's password is in the log or the image config")
	}

	second := testharness.Run(t, "out", request, work, env...)
	second.JSON(t, &resp)
	if !strings.Contains(second.Stderr, "every step from the cache image "+reg.Ref("compat:3.7")+", nothing ran") {
		t.Errorf("cache: \"true\" did not reuse compat:3.7:\n%s", second.Stderr)
	}
}
