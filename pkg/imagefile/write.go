package imagefile

import (
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

	"github.com/imagesmith/buildah-image-resource/pkg/checked"
)

var epoch = time.Unix(0, 0)

// WriteOCILayout writes an image or a whole index as an OCI layout directory, named refName in
// index.json. The blobs of staged (nil for none), checked already, are linked in rather than read
// again. The layout is written beside dir and renamed to dir only when every other blob in it
// matches its digest, so a failed or tampered download leaves nothing.
func WriteOCILayout(dir string, item any, refName string, staged *Staged) (err error) {
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	linked := map[string]bool{}
	if staged != nil && staged.dir != "" {
		if err := staged.Wait(); err != nil {
			return fmt.Errorf("write layout %s: %w", dir, err)
		}
		if linked, err = linkBlobs(filepath.Join(staged.dir, "blobs"), filepath.Join(tmp, "blobs")); err != nil {
			return fmt.Errorf("write layout %s: %w", dir, err)
		}
	}
	if idx, ok := item.(v1.ImageIndex); ok {
		item = lazyIndex{idx, staged}
	}
	if err := writeLayout(tmp, item, refName); err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	if err := verifyBlobs(filepath.Join(tmp, "blobs"), linked); err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// lazyIndex is an index to write as a layout where the blobs of staged (if any) are linked in
// already: its staged image is read from the staging, and the layers of the others open their
// streams only when first read (go-containerregistry's layout opens a layer's stream before it
// sees that the blob is there already, which costs a download started for nothing).
type lazyIndex struct {
	index  // embedded under another name than its method ImageIndex
	staged *Staged
}

type index = v1.ImageIndex

func (i lazyIndex) Image(h v1.Hash) (v1.Image, error) {
	if i.staged != nil {
		if d, err := i.staged.Image.Digest(); err == nil && d == h {
			return i.staged.Image, nil
		}
	}
	img, err := i.index.Image(h)
	return lazyImage{img}, err
}

func (i lazyIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := i.index.ImageIndex(h)
	return lazyIndex{idx, i.staged}, err
}

type lazyImage struct{ v1.Image }

func (i lazyImage) Layers() ([]v1.Layer, error) {
	layers, err := i.Image.Layers()
	for n, l := range layers {
		layers[n] = lazyLayer{l}
	}
	return layers, err
}

func (i lazyImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	return lazyLayer{l}, err
}

type lazyLayer struct{ v1.Layer }

func (l lazyLayer) Compressed() (io.ReadCloser, error) {
	return &lazyReader{open: l.Layer.Compressed}, nil
}

type lazyReader struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
}

func (r *lazyReader) Read(p []byte) (int, error) {
	if r.rc == nil {
		rc, err := r.open()
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	return r.rc.Read(p)
}

func (r *lazyReader) Close() error {
	if r.rc == nil {
		return nil
	}
	return r.rc.Close()
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

// linkBlobs hard-links (or, across file systems, copies) every blob under from into to, and
// says which files it made.
func linkBlobs(from, to string) (map[string]bool, error) {
	made := map[string]bool{}
	return made, filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
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
		if os.Link(path, target) != nil {
			if err := copyFile(path, target); err != nil {
				return err
			}
		}
		made[target] = true
		return nil
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

// verifyBlobs checks that every file under blobs/<algorithm>/ but those checked before hashes
// to its name.
func verifyBlobs(blobs string, checkedBefore map[string]bool) error {
	return filepath.WalkDir(blobs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || checkedBefore[path] {
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
		if err := checked.Copy(io.Discard, f, want, checked.Unknown); err != nil {
			return fmt.Errorf("blob %w", err)
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
