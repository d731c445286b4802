package testharness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeResource stands in for a resource binary: it echoes its stdin to
// stdout and reports its argv and environment on stderr.
const fakeResource = `#!/bin/sh
cat
echo "argv=$# dir=$1 build_id=$BUILD_ID team=$BUILD_TEAM_NAME atc=$ATC_EXTERNAL_URL extra=$EXTRA" >&2
exit "${EXIT_CODE:-0}"
`

func TestRunProgram(t *testing.T) {
	program := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(program, []byte(fakeResource), 0o755); err != nil {
		t.Fatal(err)
	}
	type request struct {
		Source  map[string]string `json:"source"`
		Version map[string]string `json:"version"`
	}
	sent := request{Source: map[string]string{"repository": "example/app"}, Version: map[string]string{"digest": "sha256:abc"}}

	result := runProgram(t, program, sent, "/tmp/work", []string{"EXTRA=x", "BUILD_ID=42", "EXIT_CODE=3"})
	if result.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", result.ExitCode)
	}
	var received request
	result.JSON(t, &received)
	if received.Source["repository"] != "example/app" || received.Version["digest"] != "sha256:abc" {
		t.Errorf("program received %+v", received)
	}
	wantStderr := "argv=1 dir=/tmp/work build_id=42 team=main atc=http://ci.example.com extra=x\n"
	if result.Stderr != wantStderr {
		t.Errorf("stderr %q, want %q", result.Stderr, wantStderr)
	}

	result = runProgram(t, program, `{"raw": true}`, "", nil)
	if string(result.Stdout) != `{"raw": true}` || result.ExitCode != 0 || !strings.HasPrefix(result.Stderr, "argv=0 dir= build_id=1 ") {
		t.Errorf("raw request: %+v", result)
	}
}

func TestModuleRoot(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join(ModuleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "module github.com/imagesmith/buildah-image-resource\n") {
		t.Errorf("ModuleRoot found another module:\n%s", gomod)
	}
}
