package resource

import (
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
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
	got, err := readBuildArgs(dir, api.OutParams{BuildArgs: inline, BuildArgsFile: "args.json"}, Env{Getenv: func(k string) string { return env[k] }, Log: NewLogger(io.Discard)})
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

// TestProxyVariablesBecomeBuildArgs: the container's proxy settings reach the build as build
// args, as docker-image-resource passes them; explicit build_args win, and the log names the
// variables passed but never their values (a proxy URL can hold a password).
func TestProxyVariablesBecomeBuildArgs(t *testing.T) {
	env := map[string]string{
		"http_proxy": "http://user:s3cret@proxy.example.com:3128", "HTTPS_PROXY": "http://user:s3cret@proxy.example.com:3128",
		"no_proxy": "localhost,.example.com", "NO_PROXY": "", "https_proxy": "http://other:3128", "FTP_PROXY": "ftp://x",
	}
	var log bytes.Buffer
	p := api.OutParams{BuildArgs: map[string]string{"https_proxy": "http://explicit:8080"}}
	got, err := readBuildArgs(t.TempDir(), p, Env{Getenv: func(k string) string { return env[k] }, Log: NewLogger(&log)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"http_proxy": env["http_proxy"], "HTTPS_PROXY": env["HTTPS_PROXY"], "no_proxy": env["no_proxy"],
		"https_proxy": "http://explicit:8080",
	}
	if !maps.Equal(got, want) {
		t.Errorf("build args %v, want %v", got, want)
	}
	if line := "build args from the environment: HTTPS_PROXY, http_proxy, no_proxy\n"; log.String() != line {
		t.Errorf("log %q, want %q", log.String(), line)
	}
	if strings.Contains(log.String(), "s3cret") {
		t.Error("the log shows a proxy's password")
	}

	log.Reset()
	if _, err := readBuildArgs(t.TempDir(), api.OutParams{}, Env{Getenv: func(string) string { return "" }, Log: NewLogger(&log)}); err != nil || log.Len() != 0 {
		t.Errorf("without proxies: err %v, log %q", err, log.String())
	}
}

// TestFilesWinOverInlineMaps: docker-image-resource passes build_args_file's args after
// build_args' (and labels_file's after labels'), so for a key in both the file's value is used;
// one log line names the keys.
func TestFilesWinOverInlineMaps(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vars.json"), []byte(`{"A": "file", "C": "file", "D": "file"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	env := Env{Getenv: func(string) string { return "" }, Log: NewLogger(&log)}
	args, err := readBuildArgs(dir, api.OutParams{BuildArgs: map[string]string{"A": "inline", "B": "inline", "C": "inline"}, BuildArgsFile: "vars.json"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"A": "file", "B": "inline", "C": "file", "D": "file"}; !maps.Equal(args, want) {
		t.Errorf("build args %v, want %v", args, want)
	}
	labels, err := readMap(dir, "vars.json", map[string]string{"D": "inline", "E": "inline"}, "params.labels_file", env.Log)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"A": "file", "C": "file", "D": "file", "E": "inline"}; !maps.Equal(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	want := "params.build_args_file: sets A, C, also in params.build_args: the file's values are used, as docker-image-resource does\n" +
		"params.labels_file: sets D, also in params.labels: the file's values are used, as docker-image-resource does\n"
	if log.String() != want {
		t.Errorf("log\n%s\nwant\n%s", log.String(), want)
	}
}
