package imagefile

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// WriteOCIArchive writes img as an OCI layout packed in a tar at path, its layers streamed as
// stored (same compressed digests). index.json names it refName. The file appears only when whole.
func WriteOCIArchive(path string, img v1.Image, refName string) error {
	return writeAtomically(path, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := writeOCIEntries(tw, img, refName); err != nil {
			return err
		}
		return tw.Close()
	})
}

func writeOCIEntries(tw *tar.Writer, img v1.Image, refName string) error {
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := writeEntry(tw, "oci-layout", []byte(ociLayoutFile)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("list layers: %w", err)
	}
	for _, l := range layers {
		if err := writeLayer(tw, l); err != nil {
			return err
		}
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	for _, blob := range [][]byte{config, manifest} {
		h, _, _ := v1.SHA256(bytes.NewReader(blob))
		if err := writeEntry(tw, blobPath(h), blob); err != nil {
			return err
		}
	}
	desc := v1.Descriptor{MediaType: mt, Size: int64(len(manifest))}
	desc.Digest, _, _ = v1.SHA256(bytes.NewReader(manifest))
	if refName != "" {
		desc.Annotations = map[string]string{RefNameAnnotation: refName}
	}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	if err != nil {
		return err
	}
	return writeEntry(tw, "index.json", index)
}

func writeLayer(tw *tar.Writer, l v1.Layer) error {
	digest, err := l.Digest()
	if err != nil {
		return fmt.Errorf("layer digest: %w", err)
	}
	size, err := l.Size()
	if err != nil {
		return fmt.Errorf("layer %s size: %w", digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	defer rc.Close()
	if err := tw.WriteHeader(&tar.Header{Name: blobPath(digest), Mode: 0o644, Size: size, ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if n, err := io.Copy(tw, rc); err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	} else if n != size {
		return fmt.Errorf("layer %s: got %d bytes, the manifest says %d", digest, n, size)
	}
	return nil
}

var epoch = time.Unix(0, 0)

func writeEntry(tw *tar.Writer, name string, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// WriteOCILayout writes an image or a whole index as an OCI layout directory, named refName in
// index.json. Blobs found in the seed blob directories (blobs/<algorithm>/<hex>, e.g. a Staged
// image's) are linked in rather than read again. The layout is written beside dir and renamed to
// dir only when every blob in it matches its digest, so a failed or tampered download leaves nothing.
func WriteOCILayout(dir string, item any, refName string, seeds ...string) (err error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, seed := range seeds {
		if err := linkBlobs(seed, filepath.Join(tmp, "blobs")); err != nil {
			return fmt.Errorf("write layout %s: %w", dir, err)
		}
	}
	if err := writeLayout(tmp, item, refName); err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	if err := verifyBlobs(filepath.Join(tmp, "blobs")); err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func writeLayout(dir string, item any, refName string) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{RefNameAnnotation: refName}))
	}
	switch t := item.(type) {
	case v1.ImageIndex:
		return p.AppendIndex(t, opts...)
	case v1.Image:
		return p.AppendImage(t, opts...)
	default:
		return fmt.Errorf("cannot write %T as a layout", item)
	}
}

// linkBlobs hard-links (or, across file systems, copies) every blob under from into to.
func linkBlobs(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if os.Link(path, target) == nil {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	return writeAtomically(to, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
}

// verifyBlobs checks that every file under blobs/<algorithm>/ hashes to its name.
func verifyBlobs(blobs string) error {
	return filepath.WalkDir(blobs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, err := v1.NewHash(filepath.Base(filepath.Dir(path)) + ":" + d.Name())
		if err != nil {
			return fmt.Errorf("blob %s: %w", d.Name(), err)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		got, _, err := v1.SHA256(f)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("blob %s: the bytes received hash to %s: refused", want, got)
		}
		return nil
	})
}

// WriteDockerArchive writes img as `docker save` does, tagged ref, for `docker load`.
func WriteDockerArchive(path string, img v1.Image, ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("tag %q: %w", ref, err)
	}
	return writeAtomically(path, func(w io.Writer) error {
		return tarball.Write(tag, img, w)
	})
}

// writeAtomically writes to a temporary file beside path and renames it into place when fn succeeds.
func writeAtomically(path string, fn func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = fn(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
