package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestTransientFaultsAreRetried: with a fifth of all requests reset, and 503s, 429s with
// Retry-After and truncated blob downloads on top, a get and a put of a multi-layer image succeed,
// log each retry, and push exactly the image a fault-free put pushes.
func TestTransientFaultsAreRetried(t *testing.T) {
	img := testharness.MultiLayerImage(t, 3, 1<<20)
	want, _ := img.Digest()
	for name, faults := range map[string]testharness.Faults{
		"resets":    {ResetRate: 0.2, ResetFirst: 1, Seed: 1},
		"mixed":     {ResetRate: 0.1, StatusRate: 0.1, TooManyRate: 0.05, RetryAfter: 1, TruncateRate: 0.3, Seed: 2},
		"truncated": {TruncateRate: 0.5, Seed: 3},
	} {
		t.Run(name, func(t *testing.T) {
			reg := testharness.StartInProcess(t)
			digest := reg.Push(t, reg.Ref("app:1"), img)
			faulty := reg.WithFaults(t, faults)

			dir := t.TempDir()
			got := testharness.Run(t, "in", map[string]any{
				"source": source(faulty, "app", "tag", "1"), "version": api.Version{Digest: digest.String(), Tag: "1"},
				"params": map[string]any{"format": "oci"},
			}, dir)
			var resp api.Response
			got.JSON(t, &resp)
			assertSkopeoDigest(t, "oci-archive:"+filepath.Join(dir, "image.tar"), want)

			put := testharness.Run(t, "out", map[string]any{"source": source(faulty, "copy"), "params": map[string]any{"image": "image.tar"}}, dir)
			put.JSON(t, &resp)
			if resp.Version.Digest != want.String() || reg.Digest(t, reg.Ref("copy:latest")) != want {
				t.Fatalf("pushed %s, want %s", resp.Version.Digest, want)
			}
			// Go's HTTP client silently retries idempotent requests on reused connections; some
			// faults must still have reached the resource, and each retry is logged.
			if logs := got.Stderr + put.Stderr; !strings.Contains(logs, "retry") && !strings.Contains(logs, "sending the blob again") {
				t.Errorf("no retry was logged:\n%s", logs)
			}
		})
	}
}

// TestAuthErrorsFailAtOnce: a wrong password is not retried; the registry's word is shown.
func TestAuthErrorsFailAtOnce(t *testing.T) {
	reg := testharness.StartDistribution(t)
	reg.Push(t, reg.Ref("app:latest"), testharness.BusyboxImage(t))
	reg.ResetRequests()
	res := testharness.Run(t, "check", map[string]any{"source": source(reg, "app", "password", "wrong")}, "")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "UNAUTHORIZED") || strings.Contains(res.Stderr, "retry") {
		t.Fatalf("exit %d, stderr:\n%s", res.ExitCode, res.Stderr)
	}
	if n := len(reg.Requests()); n > 4 {
		t.Errorf("%d requests for a wrong password, want no retries", n)
	}
}

// TestInterruptedPutMovesNoTag: a put killed during the blob upload (SIGTERM, then SIGKILL), or one
// whose manifest is refused after its blobs went in, leaves the tag on the old image.
func TestInterruptedPutMovesNoTag(t *testing.T) {
	reg := testharness.StartInProcess(t)
	old := reg.Push(t, reg.Ref("app:latest"), testharness.BusyboxImage(t))
	dir := t.TempDir()
	testharness.SaveOCIArchive(t, testharness.MultiLayerImage(t, 4, 1<<20), filepath.Join(dir, "image.tar"), "")

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			reg.ResetRequests()
			slow := reg.WithFaults(t, testharness.Faults{Delay: 300 * time.Millisecond})
			cmd := startOut(t, dir, map[string]any{"source": source(slow, "app"), "params": map[string]any{"image": "image.tar"}})
			waitFor(t, func() bool { n, _ := reg.BlobUploads(); return n >= 1 })
			cmd.Process.Signal(sig)
			cmd.Wait()
			if got := reg.Digest(t, reg.Ref("app:latest")); got != old {
				t.Fatalf("after %s the tag points to %s, want the old %s", sig, got, old)
			}
			for _, r := range reg.Requests() {
				if r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") {
					t.Fatalf("a manifest was written before all blobs: %s", r.Path)
				}
			}
		})
	}

	t.Run("manifest refused", func(t *testing.T) {
		refuse := reg.WithFaults(t, testharness.Faults{Fail: func(r *http.Request, _ int) int {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				return http.StatusBadRequest
			}
			return 0
		}})
		res := testharness.Run(t, "out", map[string]any{"source": source(refuse, "app"), "params": map[string]any{"image": "image.tar"}}, dir)
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, "injected failure") {
			t.Fatalf("exit %d:\n%s", res.ExitCode, res.Stderr)
		}
		if got := reg.Digest(t, reg.Ref("app:latest")); got != old {
			t.Fatalf("the tag moved to %s", got)
		}
	})
}

func startOut(t *testing.T, dir string, request any) *exec.Cmd {
	t.Helper()
	body, _ := json.Marshal(request)
	cmd := exec.Command(filepath.Join(testharness.Binaries(t), "out"), dir)
	cmd.Stdin = bytes.NewReader(body)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out waiting")
}
