package testharness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BuildTags are the build tags every binary importing buildah needs.
const BuildTags = "containers_image_openpgp exclude_graphdriver_btrfs seccomp"

// RunTimeout bounds one run of a resource binary.
const RunTimeout = 10 * time.Minute

// buildBinaries compiles the binaries once per test process.
var buildBinaries = sync.OnceValues(compileBinaries)

// Binaries compiles ./cmd/check, ./cmd/in and ./cmd/out once per test
// process (with cgo and BuildTags) and returns the directory holding them.
// The directory is under os.TempDir, named after the process id; Main
// removes it when the tests end.
func Binaries(t testing.TB) string {
	t.Helper()
	dir, err := buildBinaries()
	if err != nil {
		t.Fatalf("building the resource binaries: %v", err)
	}
	return dir
}

// Main runs a package's tests and then removes the binaries built by
// Binaries. Use it from TestMain:
//
//	func TestMain(m *testing.M) { testharness.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := os.RemoveAll(binariesDir()); err != nil {
		fmt.Fprintf(os.Stderr, "testharness: removing binaries: %v\n", err)
	}
	os.Exit(code)
}

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Result is what a resource binary did.
type Result struct {
	Stdout   []byte
	Stderr   string
	ExitCode int
}

// JSON strictly decodes stdout (one JSON value, no unknown fields) into v,
// failing the test, with stderr shown, if it does not decode.
func (r Result) JSON(t testing.TB, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err != nil {
		t.Fatalf("decoding stdout into %T: %v\nexit code: %d\nstdout:\n%s\nstderr:\n%s", v, err, r.ExitCode, r.Stdout, r.Stderr)
	}
}

// Run runs the resource binary bin ("check", "in" or "out") the way
// Concourse does: request on stdin (marshalled to JSON, or sent as is when
// it is a []byte or a string), dir as argv[1] ("" for check), and the
// environment of the test process plus Concourse's BUILD_* and
// ATC_EXTERNAL_URL defaults plus env ("KEY=value", later ones win). Stdout
// and stderr are captured separately; stderr is also logged to the test.
func Run(t testing.TB, bin string, request any, dir string, env ...string) Result {
	t.Helper()
	switch bin {
	case "check", "in", "out":
	default:
		t.Fatalf("unknown resource binary %q", bin)
	}
	return runProgram(t, filepath.Join(Binaries(t), bin), request, dir, env)
}

func runProgram(t testing.TB, path string, request any, dir string, env []string) Result {
	t.Helper()
	stdin, err := requestBytes(request)
	if err != nil {
		t.Fatalf("encoding request for %s: %v", filepath.Base(path), err)
	}
	var args []string
	if dir != "" {
		args = append(args, dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(append(os.Environ(), concourseEnv()...), env...)
	cmd.WaitDelay = 10 * time.Second

	err = cmd.Run()
	result := Result{Stdout: stdout.Bytes(), Stderr: stderr.String()}
	t.Logf("%s %v: stderr:\n%s", filepath.Base(path), args, result.Stderr)
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s did not finish within %s", filepath.Base(path), RunTimeout)
	case errors.As(err, &exitErr):
		result.ExitCode = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", path, err)
	}
	return result
}

func requestBytes(request any) ([]byte, error) {
	switch r := request.(type) {
	case []byte:
		return r, nil
	case string:
		return []byte(r), nil
	default:
		return json.Marshal(request)
	}
}

// concourseEnv is the metadata Concourse gives every resource container.
func concourseEnv() []string {
	return []string{
		"BUILD_ID=1",
		"BUILD_NAME=1",
		"BUILD_JOB_NAME=job",
		"BUILD_PIPELINE_NAME=pipeline",
		"BUILD_TEAM_NAME=main",
		"ATC_EXTERNAL_URL=http://ci.example.com",
	}
}

func compileBinaries() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir := binariesDir()
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("removing stale %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	cmd := exec.Command(goCommand(), "build", "-tags", BuildTags, "-o", dir+string(filepath.Separator),
		"./cmd/check", "./cmd/in", "./cmd/out")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %w\n%s", root, err, out)
	}
	return dir, nil
}

func binariesDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("buildah-image-resource-test-bin-%d", os.Getpid()))
}

// goCommand is the go tool that runs the tests (go test puts its GOROOT/bin
// first in PATH), or the usual install location.
func goCommand() string {
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	return "/usr/local/go/bin/go"
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the module root: no go.mod above the working directory")
		}
		dir = parent
	}
}
