package build

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

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
			opts.Model = model(t, tt.dockerfile)
			all, err := Labels(opts)
			if err != nil {
				t.Fatal(err)
			}
			ann, err := baseAnnotations(opts)
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
