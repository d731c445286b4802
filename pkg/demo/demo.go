// Package demo runs the resource's main job on this machine, the way Concourse would: an embedded
// registry, a base image pushed by out and saved by in, a Dockerfile built by out with load_base,
// a no-change rebuild that runs nothing and a one-file change that runs only what follows it, as
// fresh workers would, and the built image read back. It prints each request, the resource's log and what it wrote.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// Run runs the demo, printing to w. moduleRoot is where go.mod is (the binaries are built from it).
func Run(ctx context.Context, moduleRoot string, w io.Writer) error {
	work, err := os.MkdirTemp("", "buildah-image-resource-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	d := &demo{ctx: ctx, w: w, bin: filepath.Join(work, "bin")}

	d.say("Building check, in and out")
	build := exec.CommandContext(ctx, "go", "build", "-o", d.bin+"/", "./cmd/check", "./cmd/in", "./cmd/out")
	build.Dir, build.Stdout, build.Stderr = moduleRoot, w, w
	if err := build.Run(); err != nil {
		return fmt.Errorf("build the binaries: %w", err)
	}
	host, uploaded, stop, err := startRegistry()
	if err != nil {
		return err
	}
	defer stop()
	d.say("An embedded registry listens on %s", host)
	src := map[string]any{"repository": host + "/library/busybox", "tag": "1.36", "insecure": true}

	put := filepath.Join(work, "build")
	base, err := testharness.Busybox(runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(put, "made"), 0o755); err != nil {
		return err
	}
	if err := imagefile.WriteOCIArchive(filepath.Join(put, "made/image.tar"), base, ""); err != nil {
		return err
	}
	d.say("1. out pushes a busybox base image made on this machine")
	if _, err := d.run("out", map[string]any{"source": src, "params": map[string]any{"image": "made/image.tar"}}, put); err != nil {
		return err
	}

	d.say("2. check reports its digest")
	var versions []map[string]string
	if err := d.runJSON("check", map[string]any{"source": src}, "", &versions); err != nil {
		return err
	}

	d.say("3. in saves it into the volume a pipeline's `get: base` (params: {format: oci}) would have")
	baseDir := filepath.Join(put, "base")
	if err := os.MkdirAll(baseDir, 0o755); err != nil {
		return err
	}
	if _, err := d.run("in", map[string]any{"source": src, "version": versions[0], "params": map[string]any{"format": "oci"}}, baseDir); err != nil {
		return err
	}
	d.list(baseDir)

	d.say("4. out builds a Dockerfile FROM that image with load_base: no pull, base layers not uploaded again")
	app := filepath.Join(put, "app")
	if err := writeApp(app, host); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s/Dockerfile:\n%s\n", app, indent(mustRead(filepath.Join(app, "Dockerfile"))))
	appSrc := map[string]any{"repository": host + "/demo/app", "insecure": true}
	putApp := func() (map[string]string, int64, error) {
		before := uploaded.Load()
		var resp struct {
			Version map[string]string `json:"version"`
		}
		err := d.runJSON("out", map[string]any{"source": appSrc, "params": map[string]any{
			"build": "app", "load_base": "base", "cache": true,
			"build_args": map[string]string{"GREETING": "hello from $BUILD_PIPELINE_NAME"},
		}}, put, &resp)
		return resp.Version, uploaded.Load() - before, err
	}
	version, sent, err := putApp()
	if err != nil {
		return err
	}
	d.say("The registry received %d bytes of blobs for the app (the busybox layer alone is %d bytes: it was not sent again)",
		sent, layerSize(base))

	d.say("5. The same put again, as on a fresh worker (every out starts with empty storage): cache: true reads the last push's cache keys, every step hits, nothing runs")
	version, sent, err = putApp()
	if err != nil {
		return err
	}
	d.say("Same digest %s; blobs uploaded: %d bytes", version["digest"], sent)

	d.say("6. One source file changes: the steps before its COPY still hit, the COPY and what follows run")
	if err := os.WriteFile(filepath.Join(app, "hello.txt"), []byte("hello again, world\n"), 0o644); err != nil {
		return err
	}
	if version, sent, err = putApp(); err != nil {
		return err
	}
	d.say("New digest %s; blobs uploaded: %d bytes (the new layer and config only)", version["digest"], sent)

	d.say("7. in reads the built image back as a root filesystem")
	appDir := filepath.Join(work, "app-image")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		return err
	}
	if _, err := d.run("in", map[string]any{"source": appSrc, "version": version, "params": map[string]any{"format": "rootfs"}}, appDir); err != nil {
		return err
	}
	for _, f := range []string{"rootfs/greeting.txt", "rootfs/app/hello.txt"} {
		fmt.Fprintf(w, "%s: %s\n", f, strings.TrimSpace(mustRead(filepath.Join(appDir, f))))
	}
	d.say("Done: the image %s@%s is built from the saved base and pushed.", host+"/demo/app", version["digest"])
	return nil
}

type demo struct {
	ctx context.Context
	w   io.Writer
	bin string
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.w, "\n==> "+format+"\n", args...)
}

// run runs a resource binary as Concourse does and prints the request, its log and its response.
func (d *demo) run(name string, request any, dir string) ([]byte, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	args := []string{}
	if dir != "" {
		args = append(args, dir)
	}
	fmt.Fprintf(d.w, "$ echo '%s' | /opt/resource/%s %s\n", body, name, strings.Join(args, " "))
	cmd := exec.CommandContext(d.ctx, filepath.Join(d.bin, name), args...)
	var stdout bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(body), &stdout, prefixed{d.w}
	cmd.Env = append(os.Environ(), "BUILD_PIPELINE_NAME=demo", "BUILD_ID=1", "BUILD_NAME=1", "BUILD_JOB_NAME=build", "BUILD_TEAM_NAME=main")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(d.w, "stdout: %s", stdout.String())
	return stdout.Bytes(), nil
}

func (d *demo) runJSON(name string, request any, dir string, v any) error {
	out, err := d.run(name, request, dir)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
}

func (d *demo) list(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		fmt.Fprintf(d.w, "  %-12s %9d bytes\n", e.Name(), info.Size())
	}
}

// prefixed indents the resource's stderr so it reads as the build log it would be in Concourse.
type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	_, err := io.WriteString(p.w, indent(string(b)))
	return len(b), err
}

func indent(s string) string {
	return "  | " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  | ") + "\n"
}

func writeApp(dir, host string) error {
	files := map[string]string{
		"Dockerfile": "FROM " + host + "/library/busybox:1.36\n" +
			"ARG GREETING\n" +
			"RUN echo \"$GREETING\" > /greeting.txt\n" +
			"COPY hello.txt /app/hello.txt\n" +
			"CMD [\"cat\", \"/app/hello.txt\"]\n",
		"hello.txt": "hello, world\n",
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startRegistry serves go-containerregistry's registry on 127.0.0.1, counting uploaded blob bytes.
func startRegistry() (string, *atomic.Int64, func(), error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	uploaded := &atomic.Int64{}
	handler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/uploads") && r.Body != nil {
			r.Body = progress.Counting{ReadCloser: r.Body, N: uploaded}
		}
		handler.ServeHTTP(w, r)
	})}
	go srv.Serve(listener)
	return listener.Addr().String(), uploaded, func() { srv.Close() }, nil
}

// layerSize is the compressed size of the image's layers.
func layerSize(img v1.Image) int64 {
	m, err := img.Manifest()
	if err != nil {
		return 0
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

func mustRead(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(data)
}
