package api

import (
	"reflect"
	"strings"
	"testing"
)

// TestDockerImageResourceNoOpsAndPrecedence: params that mean nothing here are accepted with one
// note each; where docker-image-resource prefers one param over another, the same one is used and
// a note says which was ignored.
func TestDockerImageResourceNoOpsAndPrecedence(t *testing.T) {
	cases := []struct {
		name, source, params string
		notes                []string
		check                func(OutParams) bool
	}{
		{"docker_buildkit", ``, `"build":"b","docker_buildkit":1`,
			[]string{"params.docker_buildkit: has no effect here (buildah runs RUN --mount and secrets without it)"}, nil},
		{"startup_timeout", `,"startup_timeout":"300"`, `"build":"b"`,
			[]string{"source.startup_timeout: has no effect here (no Docker daemon is started)"}, nil},
		{"max_concurrent_downloads has an effect", `,"max_concurrent_downloads":7`, `"build":"b"`, nil, nil},
		{"tag_file over tag", ``, `"build":"b","tag":"old","tag_file":"new"`,
			[]string{"params.tag: ignored: params.tag_file is used instead, as docker-image-resource does"},
			func(p OutParams) bool { return p.TagFile == "new" }},
		{"load over build", ``, `"build":"b","load":"l"`,
			[]string{"params.build: ignored: params.load is used instead, as docker-image-resource does"},
			func(p OutParams) bool { return p.Load == "l" && p.Build == "" }},
		{"build over load_file and import_file", ``, `"build":"b","load_file":"f","import_file":"i"`,
			[]string{
				"params.load_file: ignored: params.build is used instead, as docker-image-resource does",
				"params.import_file: ignored: params.build is used instead, as docker-image-resource does",
			},
			func(p OutParams) bool { return p.Build == "b" && p.LoadFile == "" && p.ImportFile == "" }},
		{"anything over pull_repository", ``, `"load_file":"f","pull_repository":"busybox","pull_tag":"1"`,
			[]string{
				"params.pull_tag: has no effect here (it goes with params.pull_repository)",
				"params.pull_repository: ignored: params.load_file is used instead, as docker-image-resource does",
			},
			func(p OutParams) bool { return p.LoadFile == "f" }},
		{"pull_tag alone", ``, `"build":"b","pull_tag":"1"`,
			[]string{"params.pull_tag: has no effect here (it goes with params.pull_repository)"}, nil},
		{"strings and numbers as docker-image-resource sends them", `,"tag":3.7`, `"build":"b","cache":"true","tag_as_latest":"true","build_args":{"N":2}`, nil,
			func(p OutParams) bool { return p.Cache && p.TagAsLatest && p.BuildArgs["N"] == "2" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := DecodeOut(strings.NewReader(`{"source":{"repository":"r"` + c.source + `},"params":{` + c.params + `}}`))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(req.Notes, c.notes) {
				t.Errorf("notes\n%q\nwant\n%q", req.Notes, c.notes)
			}
			if c.check != nil && !c.check(req.Params) {
				t.Errorf("params %+v", req.Params)
			}
		})
	}
}

// TestDockerImageResourceRefusals: what cannot work here is refused in one line saying why.
func TestDockerImageResourceRefusals(t *testing.T) {
	for request, want := range map[string]string{
		`"params":{"pull_repository":"busybox"}`:             "params.pull_repository: not supported (deprecated in docker-image-resource): get the image with save: true and push it with params.load",
		`"params":{"image":"i.tar","load":"l"}`:              "params.load: cannot be combined with params.image",
		`"params":{"build":"b","docker_buildkit":1,"x":1}`:   "params.x: unknown field",
		`"params":{"build":"b"},"version":{}`:                "version: unknown field (expected source, params)",
		`"params":{"build":"b","cache":"yes","tag":"t"}`:     `params.cache: expected true or false, got "yes"`,
		`"params":{"build":"b","client_certs":[]}`:           "params.client_certs: unknown field",
		`"params":{"build":"b","content_trust":{}}`:          "params.content_trust: not supported yet: Notary (Docker Content Trust) signing is not implemented",
		`"params":{"build":"b","tag_as_latest":"sometimes"}`: `params.tag_as_latest: expected true or false, got "sometimes"`,
	} {
		err := out(`{"source":{"repository":"r"},` + request + `}`)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", request, err, want)
		}
	}
	if err := check(`{"source":{"repository":"r","aws_ecr_registry_id":"a"}}`); err == nil || !strings.HasPrefix(err.Error(), "source.aws_ecr_registry_id: not supported yet: the registry id is read from") {
		t.Errorf("aws: %v", err)
	}
}

// TestNotesOfGetAndCheck: get and check report the source's no-ops too.
func TestNotesOfGetAndCheck(t *testing.T) {
	req, err := DecodeCheck(strings.NewReader(`{"source":{"repository":"r","startup_timeout":120}}`))
	if err != nil || len(req.Notes) != 1 {
		t.Errorf("check: %v, notes %q", err, req.Notes)
	}
	in, err := DecodeIn(strings.NewReader(`{"source":{"repository":"r","startup_timeout":120},"version":{"digest":"sha256:` + strings.Repeat("a", 64) + `"},"params":{"skip_download":"true"}}`))
	if err != nil || len(in.Notes) != 1 || !in.Params.SkipDownload {
		t.Errorf("in: %v, notes %q, params %+v", err, in.Notes, in.Params)
	}
}
