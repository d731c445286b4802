package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// RunMarker is what every RUN step of the corpus prints when it executes. The Dockerfiles
// write it as "benchrun=$((0+1))", so the instruction text a tool echoes never contains it:
// counting it in a step's log counts the RUN steps that executed.
const RunMarker = "benchrun=1"

const runMarkerCmd = `echo "benchrun=$((0+1))"`

// SourceFiles is how many small source files the app context holds.
const SourceFiles = 300

// Base is a base image in the registry and what a Concourse get of it saved.
type Base struct {
	Name        string // "busybox" or "debian"
	Repo, Tag   string // "127.0.0.1:port/bench/debian", "bookworm"
	Digest      v1.Hash
	LayerBytes  int64  // compressed size of its layers
	GetDir      string // the get's directory: image.tar (OCI), image (docker archive), repository, tag, image-id, ...
	ImageID     string // config digest
	Description string
	// Platforms are the platforms of a multi-platform base (an index, saved whole in the get's
	// oci/); nil for an image.
	Platforms []string
}

// Ref is Repo:Tag.
func (b *Base) Ref() string { return b.Repo + ":" + b.Tag }

// BusyboxBase is the busybox image of the tests (pkg/testharness).
func BusyboxBase() (v1.Image, string, error) {
	img, err := testharness.Busybox(runtime.GOARCH)
	if err != nil {
		return nil, "", fmt.Errorf("making the busybox base: %w", err)
	}
	return img, "busybox (pkg/testharness: one static busybox layer)", nil
}

// DebianBase is a one-layer image of a root filesystem tarball (debootstrap --variant=minbase
// bookworm, made by bench/run).
func DebianBase(rootfsTar string) (v1.Image, string, error) {
	layer, err := tarball.LayerFromFile(rootfsTar, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, "", fmt.Errorf("making a layer of %s: %w", rootfsTar, err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: created, CreatedBy: "debootstrap --variant=minbase bookworm"}})
	if err != nil {
		return nil, "", fmt.Errorf("appending the Debian layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, "", err
	}
	cfg = cfg.DeepCopy()
	cfg.Created, cfg.OS, cfg.Architecture = created, "linux", runtime.GOARCH
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"bash"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("setting the Debian config: %w", err)
	}
	info, err := os.Stat(rootfsTar)
	if err != nil {
		return nil, "", err
	}
	return img, fmt.Sprintf("debian bookworm (debootstrap --variant=minbase, %.0f MB uncompressed)", float64(info.Size())/1e6), nil
}

// PublishBase pushes img to host/bench/<name>:tag and saves it with the resource's `in` into
// dir, as a Concourse get with {format: oci, save: true} would: image.tar for load_base, the
// OCI tooling and BuildKit, and the docker archive `image` for docker-image-resource's flow.
func PublishBase(ctx context.Context, bin, host, baseName, tag, description string, img v1.Image, dir string) (*Base, error) {
	b := &Base{Name: baseName, Repo: host + "/bench/" + baseName, Tag: tag, GetDir: dir, Description: description}
	ref, err := name.ParseReference(b.Ref(), name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("pushing the %s base: %w", baseName, err)
	}
	if b.Digest, err = img.Digest(); err != nil {
		return nil, err
	}
	manifest, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	for _, l := range manifest.Layers {
		b.LayerBytes += l.Size
	}
	b.ImageID = manifest.Config.Digest.String()

	return b, get(ctx, bin, b, map[string]any{"format": "oci", "save": true})
}

// get saves b with the resource's `in` into b.GetDir, with params.
func get(ctx context.Context, bin string, b *Base, params map[string]any) error {
	if err := os.MkdirAll(b.GetDir, 0o755); err != nil {
		return err
	}
	request, err := json.Marshal(map[string]any{
		"source":  map[string]any{"repository": b.Repo, "tag": b.Tag, "insecure": true},
		"version": map[string]string{"digest": b.Digest.String(), "tag": b.Tag},
		"params":  params,
	})
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "in"), b.GetDir)
	cmd.Stdin = bytes.NewReader(request)
	cmd.Env = append(os.Environ(), ConcourseEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("in (get of the %s base): %w\n%s", b.Name, err, out)
	}
	return nil
}

// PlatformArchitectures are the architectures of S6's multi-platform base.
var PlatformArchitectures = []string{"amd64", "arm64"}

// BusyboxIndex is the busybox base for linux/amd64 and linux/arm64 (S6), each image with its own
// architecture's static busybox (Debian's busybox-static; .ci/setup extracts the foreign one).
func BusyboxIndex() (v1.ImageIndex, string, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range PlatformArchitectures {
		img, err := testharness.BusyboxFor(arch)
		if err != nil {
			return nil, "", fmt.Errorf("making the %s busybox base: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return idx, "busybox for linux/amd64 and linux/arm64 (an index; each image with its own architecture's static busybox)", nil
}

// PublishIndex pushes idx to host/bench/<name>:tag and saves it with the resource's `in` into
// dir, as a Concourse get with {format: oci-layout} would: the whole index in oci/.
func PublishIndex(ctx context.Context, bin, host, baseName, tag, description string, idx v1.ImageIndex, dir string) (*Base, error) {
	b := &Base{Name: baseName, Repo: host + "/bench/" + baseName, Tag: tag, GetDir: dir, Description: description}
	ref, err := name.ParseReference(b.Ref(), name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return nil, fmt.Errorf("pushing the %s base: %w", baseName, err)
	}
	if b.Digest, err = idx.Digest(); err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		b.Platforms = append(b.Platforms, d.Platform.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		layers, err := img.Manifest()
		if err != nil {
			return nil, err
		}
		for _, l := range layers.Layers {
			b.LayerBytes += l.Size
		}
	}
	return b, get(ctx, bin, b, map[string]any{"format": "oci-layout"})
}

// ConcourseEnv is the metadata Concourse gives every resource container.
var ConcourseEnv = []string{"BUILD_ID=1", "BUILD_NAME=1", "BUILD_JOB_NAME=build", "BUILD_PIPELINE_NAME=bench",
	"BUILD_TEAM_NAME=main", "ATC_EXTERNAL_URL=http://ci.example.com"}

// The Dockerfiles name their base through ARG BASE_IMAGE, whose default is the base in the
// registry: docker, buildah and this resource use a loaded base of that name; BuildKit gets
// the base the way oci-build-task serves it (a local registry, passed as a build arg).
const fromBase = "ARG BASE_IMAGE=%s\nFROM ${BASE_IMAGE}"

// WriteApp writes the app context: a CPU-and-disk RUN writing blobMB MB (100 in a full run),
// a COPY of SourceFiles small files, a RUN over them, ENV and LABEL. change > 0 alters one
// source file.
func WriteApp(dir string, base *Base, change, blobMB int) error {
	// The CPU part reads the blob through tr 8 times (about 2 s for 100 MB with Debian's
	// coreutils); busybox's tr is 5 times slower, so the busybox base reads it twice.
	passes := "1 2 3 4 5 6 7 8"
	if base.Name == "busybox" {
		passes = "1 2"
	}
	dockerfile := fmt.Sprintf(fromBase, base.Ref()) + `
ENV APP_HOME=/app LANG=C.UTF-8
LABEL org.example.bench="app"
RUN ` + runMarkerCmd + ` && mkdir -p /opt && dd if=/dev/urandom of=/opt/blob bs=1M count=` + fmt.Sprint(blobMB) + ` 2>/dev/null && for i in ` + passes + `; do cat /opt/blob; done | tr 'a-z' 'A-Z' | wc -c > /opt/blob.count
COPY src/ /app/src/
RUN ` + runMarkerCmd + ` && cat /app/src/*/* | wc -c > /app/size && ls /app/src | wc -l > /app/packages
WORKDIR /app
CMD ["cat", "/app/size"]
`
	files := map[string]string{"Dockerfile": dockerfile}
	for i := 0; i < SourceFiles; i++ {
		files[fmt.Sprintf("src/pkg%02d/file%03d.go", i%10, i)] = sourceFile(i)
	}
	if change > 0 {
		files["src/pkg09/file299.go"] += fmt.Sprintf("\n// change %d\n", change)
	}
	return writeFiles(dir, files)
}

// WriteMultiStage writes a two-stage build: a builder stage making a ~40 MB artifact from the
// sources, and a final stage copying it onto the base.
func WriteMultiStage(dir string, base *Base) error {
	dockerfile := fmt.Sprintf(fromBase, base.Ref()) + ` AS builder
COPY src/ /src/
RUN ` + runMarkerCmd + ` && mkdir -p /out && dd if=/dev/urandom of=/out/seed bs=1M count=10 2>/dev/null && for i in 1 2 3 4; do cat /out/seed /src/*/*; done | tr 'a-z' 'A-Z' > /out/app && rm /out/seed
FROM ${BASE_IMAGE}
LABEL org.example.bench="multistage"
COPY --from=builder /out/app /usr/local/bin/app
RUN ` + runMarkerCmd + ` && wc -c /usr/local/bin/app > /etc/app.size
CMD ["cat", "/etc/app.size"]
`
	files := map[string]string{"Dockerfile": dockerfile}
	for i := 0; i < SourceFiles; i++ {
		files[fmt.Sprintf("src/pkg%02d/file%03d.go", i%10, i)] = sourceFile(i)
	}
	return writeFiles(dir, files)
}

// WritePlatforms writes S6's context: a RUN writing blobMB MB and reading it through tr (under
// QEMU on the foreign platform), a COPY of the sources and a RUN over them.
func WritePlatforms(dir string, base *Base, blobMB int) error {
	dockerfile := fmt.Sprintf(fromBase, base.Ref()) + `
RUN ` + runMarkerCmd + ` && mkdir -p /opt && dd if=/dev/urandom of=/opt/blob bs=1M count=` + fmt.Sprint(blobMB) + ` 2>/dev/null && cat /opt/blob | tr 'a-z' 'A-Z' | wc -c > /opt/blob.count && uname -m > /opt/machine
COPY src/ /app/src/
RUN ` + runMarkerCmd + ` && cat /app/src/*/* | wc -c > /app/size
CMD ["cat", "/app/size"]
`
	files := map[string]string{"Dockerfile": dockerfile}
	for i := 0; i < SourceFiles; i++ {
		files[fmt.Sprintf("src/pkg%02d/file%03d.go", i%10, i)] = sourceFile(i)
	}
	return writeFiles(dir, files)
}

// WriteService writes the i-th small Dockerfile of the fan-out set.
func WriteService(dir string, base *Base, i int) error {
	svc := fmt.Sprintf("svc-%d", i)
	dockerfile := fmt.Sprintf(fromBase, base.Ref()) + `
LABEL org.example.service="` + svc + `"
COPY svc.conf /etc/svc/svc.conf
RUN ` + runMarkerCmd + ` && echo ` + svc + ` > /etc/svc/name && wc -c /etc/svc/svc.conf > /etc/svc/size
CMD ["cat", "/etc/svc/name"]
`
	return writeFiles(dir, map[string]string{
		"Dockerfile": dockerfile,
		"svc.conf":   fmt.Sprintf("name = %q\nport = %d\nworkers = %d\n", svc, 8000+i, 2+i%4),
	})
}

// WritePackages writes S5's context (issue 7): a COPY of a file that changes with every put
// (change), which invalidates the RUN after it, and a RUN installing packages with apt-get,
// apt's package lists and downloaded packages kept in cache mounts (docker's recommended form;
// the minbase image has no docker-clean, removed all the same as Dockerfiles do). apt keeps no
// pkgcache.bin/srcpkgcache.bin (as the README recommends): they are rebuilt from the lists in
// every build, and each rebuild would be new content for the mount to save.
// aptNoBinCaches are the apt-get options that keep no binary caches in /var/cache/apt.
const aptNoBinCaches = "-o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="

func WritePackages(dir string, base *Base, change int, packages string) error {
	dockerfile := fmt.Sprintf(fromBase, base.Ref()) + `
COPY version.txt /etc/app-version
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt/lists,sharing=locked rm -f /etc/apt/apt.conf.d/docker-clean; ` + runMarkerCmd + ` && apt-get ` + aptNoBinCaches + ` update -q && DEBIAN_FRONTEND=noninteractive apt-get ` + aptNoBinCaches + ` install -y -q --no-install-recommends ` + packages + `
CMD ["bash"]
`
	return writeFiles(dir, map[string]string{
		"Dockerfile":  dockerfile,
		"version.txt": fmt.Sprintf("version %d\n", change),
	})
}

// sourceFile is a deterministic Go-looking file of about 1.5 KB.
func sourceFile(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package pkg%02d\n\n// Func%03d is generated benchmark source.\nfunc Func%03d(x int) int {\n", i%10, i, i)
	for j := 0; j < 40; j++ {
		fmt.Fprintf(&b, "\tx = x*%d + %d // step %d\n", j+3, i*j+1, j)
	}
	b.WriteString("\treturn x\n}\n")
	return b.String()
}

func writeFiles(dir string, files map[string]string) error {
	for path, content := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("writing the build context: %w", err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return fmt.Errorf("writing the build context: %w", err)
		}
	}
	return nil
}

// copyTree copies src into dst: regular files are copied (fresh mtimes, as a fresh clone on a
// new worker has) or hard-linked when link is true.
func copyTree(src, dst string, link bool) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case link:
			return os.Link(path, target)
		default:
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
	})
}
