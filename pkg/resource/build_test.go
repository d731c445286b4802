package resource

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

// TestBuildArgsExpandOnlyConcourseVariables: as docker-image-resource, build_args values expand
// $BUILD_ID, ${BUILD_NAME} and the other Concourse variables (unset ones to nothing); every other
// $-text, and every value of build_args_file, reaches the build byte for byte.
func TestBuildArgsExpandOnlyConcourseVariables(t *testing.T) {
	env := map[string]string{
		"BUILD_ID": "42", "BUILD_NAME": "7", "BUILD_JOB_NAME": "build", "BUILD_PIPELINE_NAME": "app",
		"ATC_EXTERNAL_URL": "https://ci.example.com", "HOME": "/root", "FOO": "foo",
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "args.json"), []byte(`{"FROM_FILE": "$BUILD_ID ${HOME}"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	inline := map[string]string{
		"SHELL":    "${HOME}/x ${FOO:-bar}",
		"PLAIN":    "$HOME $FOO $ ${ $$ ${} $1 ${FOO",
		"ID":       "concourse-$BUILD_ID",
		"BRACED":   "${BUILD_NAME}/${BUILD_JOB_NAME}@$BUILD_PIPELINE_NAME",
		"URL":      "$ATC_EXTERNAL_URL/builds/$BUILD_ID",
		"UNSET":    "[$BUILD_TEAM_NAME][${BUILD_TEAM_NAME}]",
		"NOT_MINE": "$BUILD_IDENTITY", // docker-image-resource's ${value//\$BUILD_ID/...} replaces the prefix
		"DOLLARS":  "$$BUILD_ID",
	}
	got, err := readBuildArgs(dir, api.OutParams{BuildArgs: inline, BuildArgsFile: "args.json"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"SHELL":     "${HOME}/x ${FOO:-bar}",
		"PLAIN":     "$HOME $FOO $ ${ $$ ${} $1 ${FOO",
		"ID":        "concourse-42",
		"BRACED":    "7/build@app",
		"URL":       "https://ci.example.com/builds/42",
		"UNSET":     "[][]",
		"NOT_MINE":  "42ENTITY",
		"DOLLARS":   "$42",
		"FROM_FILE": "$BUILD_ID ${HOME}",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}
