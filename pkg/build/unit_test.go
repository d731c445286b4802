package build

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containers/image/v5/pkg/sysregistriesv2"
	ctypes "github.com/containers/image/v5/types"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestStepLog(t *testing.T) {
	var out bytes.Buffer
	s := newStepLog(&out)
	for _, w := range []string{
		"[1/2] STEP 1/2: FROM busybox AS b\n",
		"[1/2] STEP 2/2: RUN make\n",
		"--> Using cache 0123456789abcdef\n",
		"STEP 1/2: not a header, RUN output mid-line",
		"\n--> 1234\n",
		"[2/2] STEP 1/1: FROM b\n",
		"[2/2] COMMIT app\n",
		"STEP 12: ADD . /src\n",
	} {
		if _, err := s.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	steps := s.finish()
	var got []string
	for _, st := range steps {
		got = append(got, strings.Join([]string{st.Instruction, strconv.Itoa(st.Stage), strconv.Itoa(st.Stages), strconv.Itoa(st.Number), strconv.Itoa(st.Total), strconv.FormatBool(st.Cached)}, "|"))
	}
	want := []string{"FROM busybox AS b|1|2|1|2|false", "RUN make|1|2|2|2|true", "FROM b|2|2|1|1|false", "ADD . /src|0|0|12|0|false"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("steps:\n%v\nwant\n%v", got, want)
	}
	for _, line := range []string{"[1/2] STEP 2/2: RUN make (", "[2/2] STEP 1/1: FROM b (", "STEP 12: ADD . /src ("} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}

func TestLayerMediaType(t *testing.T) {
	tests := []struct {
		manifest, layer, want types.MediaType
		ok                    bool
	}{
		{types.OCIManifestSchema1, types.DockerLayer, types.OCILayer, true},
		{types.OCIManifestSchema1, types.OCILayer, types.OCILayer, true},
		{types.OCIManifestSchema1, types.DockerUncompressedLayer, types.OCIUncompressedLayer, true},
		{types.OCIManifestSchema1, types.OCILayerZStd, types.OCILayerZStd, true},
		{types.DockerManifestSchema2, types.OCILayer, types.DockerLayer, true},
		{types.DockerManifestSchema2, types.OCIUncompressedLayer, types.DockerUncompressedLayer, true},
		{types.DockerManifestSchema2, types.OCILayerZStd, "", false},
		{types.OCIManifestSchema1, types.DockerForeignLayer, "", false},
	}
	for _, tt := range tests {
		got, ok := layerMediaType(tt.manifest, tt.layer)
		if got != tt.want || ok != tt.ok {
			t.Errorf("layerMediaType(%s, %s) = %s, %v; want %s, %v", tt.manifest, tt.layer, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSecretSpecs(t *testing.T) {
	got, err := secretSpecs(map[string]string{"b": "/run/b", "a": "/run/a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id=a,src=/run/a,type=file", "id=b,src=/run/b,type=file"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []map[string]string{{"a,b": "/x"}, {"a": "/x,y"}, {"": "/x"}} {
		if _, err := secretSpecs(bad); err == nil {
			t.Errorf("secretSpecs(%v) accepted", bad)
		}
	}
}

func TestBaseLabels(t *testing.T) {
	bases := []Base{{Names: []string{"docker.io/library/busybox:latest"}, Digest: "sha256:abc"}}
	tests := []struct {
		name, dockerfile, format string
		labels                   map[string]string
		wantLabels, wantAnn      []string
	}{
		{"loaded base", "FROM busybox\n", "", map[string]string{"x": "1"},
			[]string{"org.opencontainers.image.base.digest=sha256:abc", "org.opencontainers.image.base.name=docker.io/library/busybox:latest", "x=1"},
			[]string{"org.opencontainers.image.base.digest=sha256:abc", "org.opencontainers.image.base.name=docker.io/library/busybox:latest"}},
		{"user label wins, docker has no annotations", "FROM busybox\n", "docker", map[string]string{"org.opencontainers.image.base.name": "mine"},
			[]string{"org.opencontainers.image.base.digest=sha256:abc", "org.opencontainers.image.base.name=mine"}, nil},
		{"pulled base", "FROM alpine\n", "", nil, nil, nil},
		{"scratch", "FROM busybox AS b\nFROM scratch\nCOPY --from=b / /\n", "", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Bases: bases, Labels: tt.labels, ManifestFormat: tt.format}
			all, err := Labels([]byte(tt.dockerfile), opts)
			if err != nil {
				t.Fatal(err)
			}
			ann, err := baseAnnotations([]byte(tt.dockerfile), opts)
			if err != nil {
				t.Fatal(err)
			}
			var labels []string
			for _, k := range slices.Sorted(maps.Keys(all)) {
				labels = append(labels, k+"="+all[k])
			}
			if !reflect.DeepEqual(labels, tt.wantLabels) || !reflect.DeepEqual(ann, tt.wantAnn) {
				t.Errorf("labels %v, annotations %v", labels, ann)
			}
		})
	}
}

func TestWriteRegistryFiles(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"docker.io", "registry.local:5000"}
	auth := func(h string) (string, string) {
		if h == "docker.io" {
			return "", ""
		}
		return "me", "pw"
	}
	if err := writeAuthFile(filepath.Join(dir, "auth.json"), hosts, auth); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "auth.json"))
	if string(data) != `{"auths":{"registry.local:5000":{"auth":"bWU6cHc="}}}` {
		t.Errorf("auth.json = %s", data)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "auth.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("auth.json mode %v", fi.Mode())
	}
	if err := writeRegistriesConf(filepath.Join(dir, "registries.conf"), hosts, func(h string) bool { return h == "registry.local:5000" }, nil); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(dir, "registries.conf"))
	if !strings.Contains(string(data), "[[registry]]\nlocation = \"registry.local:5000\"\ninsecure = true\n") || strings.Count(string(data), "[[registry]]") != 1 {
		t.Errorf("registries.conf = %s", data)
	}
}

// TestWriteRegistriesConfMirror: Docker Hub gets the mirror, insecure when it says so, and the
// file parses as containers/image reads it: docker.io images resolve to the mirror first.
func TestWriteRegistriesConfMirror(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "registries.conf")
		hosts := []string{"docker.io", "registry.local:5000"}
		err := writeRegistriesConf(path, hosts, func(h string) bool { return h == "registry.local:5000" }, &Mirror{Host: "mirror.local:5001", Insecure: insecure})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		want := fmt.Sprintf("[[registry]]\nlocation = \"docker.io\"\ninsecure = false\n\n[[registry.mirror]]\nlocation = \"mirror.local:5001\"\ninsecure = %t\n", insecure)
		if !strings.Contains(string(data), want) || strings.Count(string(data), "[[registry]]") != 2 {
			t.Errorf("registries.conf = %s", data)
		}
		sys := &ctypes.SystemContext{SystemRegistriesConfPath: path, SystemRegistriesConfDirPath: t.TempDir()}
		reg, err := sysregistriesv2.FindRegistry(sys, "docker.io/library/busybox:latest")
		if err != nil || reg == nil {
			t.Fatalf("FindRegistry: %v, %v", reg, err)
		}
		if len(reg.Mirrors) != 1 || reg.Mirrors[0].Location != "mirror.local:5001" || reg.Mirrors[0].Insecure != insecure {
			t.Errorf("docker.io mirrors = %+v", reg.Mirrors)
		}
	}
}
