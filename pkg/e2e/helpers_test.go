package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

func TestMain(m *testing.M) { testharness.Main(m) }

// registries are the two kinds every protocol test runs against.
func registries(t *testing.T) map[string]*testharness.Registry {
	return map[string]*testharness.Registry{
		"in-process":   testharness.StartInProcess(t),
		"distribution": testharness.StartDistribution(t),
	}
}

// source is a Concourse source for repo on reg, with extra fields laid over it.
func source(reg *testharness.Registry, repo string, extra ...any) map[string]any {
	src := reg.Source()
	src["repository"] = reg.Host + "/" + repo
	for i := 0; i+1 < len(extra); i += 2 {
		src[extra[i].(string)] = extra[i+1]
	}
	return src
}

func check(t *testing.T, src map[string]any, version any) []api.Version {
	t.Helper()
	res := testharness.Run(t, "check", map[string]any{"source": src, "version": version}, "")
	var versions []api.Version
	res.JSON(t, &versions)
	return versions
}

func get(t *testing.T, src map[string]any, version api.Version, params map[string]any) (string, api.Response) {
	t.Helper()
	dir := t.TempDir()
	res := testharness.Run(t, "in", map[string]any{"source": src, "version": version, "params": params}, dir)
	var resp api.Response
	res.JSON(t, &resp)
	return dir, resp
}

func put(t *testing.T, dir string, src map[string]any, params map[string]any, env ...string) api.Response {
	t.Helper()
	res := testharness.Run(t, "out", map[string]any{"source": src, "params": params}, dir, env...)
	var resp api.Response
	res.JSON(t, &resp)
	return resp
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func metadata(resp api.Response, name string) string {
	for _, m := range resp.Metadata {
		if m.Name == name {
			return m.Value
		}
	}
	return ""
}

func mustJSON(t *testing.T, v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
