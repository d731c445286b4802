package testharness

import (
	"os"
	"os/exec"
	"testing"
)

// Missing is the one guard for a test that needs something this machine lacks (a tool, root, a
// kernel feature): it skips the test, or fails it when running in CI (CI=true), where .ci/setup
// must have provided everything.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// RequireFile calls Missing when a host file the test needs is missing; debianPackage is the
// package that installs it.
func RequireFile(t testing.TB, path, debianPackage string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s not found (Debian package %s; see .ci/setup): %v", path, debianPackage, err)
	}
}

// RequireCommand is RequireFile for a command looked up in PATH; it returns the command's path.
func RequireCommand(t testing.TB, command, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err != nil {
		Missing(t, "%s not found (Debian package %s; see .ci/setup): %v", command, debianPackage, err)
	}
	return path
}

// RequireRoot calls Missing unless the test runs as root (CI does); why says what needs it.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "%s needs root", why)
	}
}
