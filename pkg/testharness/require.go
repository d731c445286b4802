package testharness

import (
	"os"
	"os/exec"
	"testing"
)

// requireFile skips the test when a host file the harness needs is missing,
// or fails it when running in CI (CI=true), where .ci/setup must have
// installed it from the named Debian package.
func requireFile(t testing.TB, path, debianPackage string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "%s not found (Debian package %s; see .ci/setup): %v", path, debianPackage, err)
	}
}

// requireCommand is requireFile for a command looked up in PATH; it returns
// the command's path.
func requireCommand(t testing.TB, command, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err != nil {
		missing(t, "%s not found (Debian package %s; see .ci/setup): %v", command, debianPackage, err)
	}
	return path
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
