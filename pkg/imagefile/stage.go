package imagefile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/imagesmith/buildah-image-resource/pkg/checked"
)

// DefaultJobs is how many layers Stage fetches at a time when the caller does not say.
const DefaultJobs = 4

// Staged is an image whose blobs are being fetched once each, checked against the manifest's
// digest and size, into a private place that every file made from the image reads them from:
// a blob directory (Stage) or the OCI archive being written (StageArchive). Reading a blob of
// Image waits until that blob is staged and checked, so files can be made from the first layers
// while the next ones are still on the way.
type Staged struct {
	Image v1.Image

	blobs   map[v1.Hash]*stagedBlob
	fetched chan struct{} // closed when every fetch has ended
	err     error         // the first fetch that failed, once fetched is closed
	stop    atomic.Bool   // set by the first failure and by Close: no more fetches start

	dir     string       // Stage: the blob directory
	archive *stagingFile // StageArchive: the archive being written
}

// stagedBlob is one blob's fetch: done is closed when it has ended, err says how.
type stagedBlob struct {
	done chan struct{}
	err  error
}

// errStopped ends the fetches Close cancels.
var errStopped = errors.New("stopped")

// Stage starts fetching the config and every layer of img into a new blob directory
// (blobs/sha256/<hex>) in parent, at most jobs layers at a time (DefaultJobs when jobs < 1), the
// config alongside. Each blob is written to a temporary name and renamed only once its bytes
// matched the manifest's digest and size. The returned image has img's manifest and reads its
// blobs from the directory. Close removes it.
func Stage(img v1.Image, parent string, jobs int) (*Staged, error) {
	m, err := readManifest(img)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, ".blobs-*")
	if err != nil {
		return nil, err
	}
	s, err := stage(img, m, dirBlobs(dir), putFile(dir), jobs)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.dir = dir
	return s, nil
}

// StageArchive starts fetching img's blobs, as Stage does, straight into their places in the OCI
// archive WriteOCIArchive writes (the same bytes), in a temporary file beside path: a layer
// needs no copy once it has arrived. Keep moves the archive to path once every blob checked out;
// Close removes it when it was not kept.
func StageArchive(img v1.Image, path, refName string, jobs int) (*Staged, error) {
	m, err := readManifest(img)
	if err != nil {
		return nil, err
	}
	plan, err := planArchive(m, refName)
	if err != nil {
		return nil, err
	}
	file, err := createStagingFile(path, plan)
	if err != nil {
		return nil, err
	}
	s, err := stage(img, m, file.blobs(), file.put, jobs)
	if err != nil {
		file.discard()
		return nil, err
	}
	s.archive = file
	return s, nil
}

// Wait waits for every fetch to end and returns the first failure.
func (s *Staged) Wait() error {
	<-s.fetched
	return s.err
}

// Keep moves the archive of a StageArchive to its path once every blob checked out.
func (s *Staged) Keep() error {
	if err := s.Wait(); err != nil {
		return err
	}
	return s.archive.keep()
}

// Close stops the fetches not started yet, waits for the others, and removes what was staged
// and not kept.
func (s *Staged) Close() error {
	s.stop.Store(true)
	<-s.fetched
	if s.archive != nil {
		return s.archive.discard()
	}
	return os.RemoveAll(s.dir)
}

// stage starts the fetches: the config, and the layers (each distinct digest once) in the
// manifest's order, jobs at a time. Layers are opened by digest, so no fetch waits for the config
// (go-containerregistry's Layers reads it first).
func stage(img v1.Image, m imageManifest, store blobStore, put func(v1.Descriptor, io.Reader) error, jobs int) (*Staged, error) {
	s := &Staged{blobs: map[v1.Hash]*stagedBlob{}, fetched: make(chan struct{})}
	config := blobFetch{m.parsed.Config, func() (io.ReadCloser, error) {
		data, err := img.RawConfigFile()
		return io.NopCloser(bytes.NewReader(data)), err
	}}
	s.blobs[config.desc.Digest] = &stagedBlob{done: make(chan struct{})}
	var layers []blobFetch
	for _, desc := range m.parsed.Layers {
		if s.blobs[desc.Digest] != nil {
			continue
		}
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		s.blobs[desc.Digest] = &stagedBlob{done: make(chan struct{})}
		layers = append(layers, blobFetch{desc, l.Compressed})
	}
	stored, err := partial.CompressedToImage(&storedImage{store: waitingStore{store, s}, raw: m.raw, mediaType: m.mediaType, manifest: m.parsed})
	if err != nil {
		return nil, err
	}
	s.Image = stored
	if jobs < 1 {
		jobs = DefaultJobs
	}
	go s.fetch(put, config, layers, jobs)
	return s, nil
}

// blobFetch is a blob to stage and how to open its stream.
type blobFetch struct {
	desc v1.Descriptor
	open func() (io.ReadCloser, error)
}

// fetch stages the config and, jobs at a time, the layers; s.err is then the first failure in
// the manifest's order.
func (s *Staged) fetch(put func(v1.Descriptor, io.Reader) error, config blobFetch, layers []blobFetch, jobs int) {
	configDone := make(chan struct{})
	go func() { s.fetchBlob(put, config); close(configDone) }()
	var g errgroup.Group
	g.SetLimit(jobs)
	for _, l := range layers {
		g.Go(func() error { s.fetchBlob(put, l); return nil })
	}
	_ = g.Wait()
	<-configDone
	for _, f := range append([]blobFetch{config}, layers...) {
		if err := s.blobs[f.desc.Digest].err; err != nil && (s.err == nil || s.err == errStopped) {
			s.err = err
		}
	}
	close(s.fetched)
}

// fetchBlob stages one blob, unless the stage was stopped or a fetch failed before; the first
// failure stops the fetches not started yet.
func (s *Staged) fetchBlob(put func(v1.Descriptor, io.Reader) error, f blobFetch) {
	b := s.blobs[f.desc.Digest]
	defer close(b.done)
	if s.stop.Load() {
		b.err = errStopped
		return
	}
	if b.err = stageBlob(put, f); b.err != nil {
		s.stop.Store(true)
	}
}

func stageBlob(put func(v1.Descriptor, io.Reader) error, f blobFetch) error {
	if f.desc.Digest.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: unsupported digest algorithm", f.desc.Digest)
	}
	rc, err := f.open()
	if err != nil {
		return fmt.Errorf("blob %s: %w", f.desc.Digest, err)
	}
	defer rc.Close()
	if err := put(f.desc, rc); err != nil {
		return fmt.Errorf("blob %w", err)
	}
	return nil
}

// waitingStore reads a staged blob once its fetch has ended well.
type waitingStore struct {
	blobStore
	s *Staged
}

func (w waitingStore) open(file string) (io.ReadCloser, error) {
	if err := w.wait(file); err != nil {
		return nil, err
	}
	return w.blobStore.open(file)
}

func (w waitingStore) size(file string) (int64, error) {
	if err := w.wait(file); err != nil {
		return 0, err
	}
	return w.blobStore.size(file)
}

func (w waitingStore) wait(file string) error {
	h, err := v1.NewHash(filepath.Base(filepath.Dir(file)) + ":" + filepath.Base(file))
	if err != nil || w.s.blobs[h] == nil {
		return fmt.Errorf("%s: not a blob of the image", file)
	}
	b := w.s.blobs[h]
	<-b.done
	return b.err
}

// putFile writes a blob to dir/blobs/<algorithm>/<hex>: to a temporary name, renamed when checked.
func putFile(dir string) func(v1.Descriptor, io.Reader) error {
	return func(desc v1.Descriptor, r io.Reader) error {
		final := filepath.Join(dir, filepath.FromSlash(blobPath(desc.Digest)))
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(final), "."+desc.Digest.Hex+"-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name()) // a no-op once renamed
		defer tmp.Close()
		if err := checked.Copy(tmp, r, desc.Digest, desc.Size); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		return os.Rename(tmp.Name(), final)
	}
}

// imageManifest is an image's manifest, parsed and as stored.
type imageManifest struct {
	parsed    *v1.Manifest
	raw       []byte
	mediaType types.MediaType
}

func readManifest(img v1.Image) (m imageManifest, err error) {
	if m.parsed, err = img.Manifest(); err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	if m.raw, err = img.RawManifest(); err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	m.mediaType, err = img.MediaType()
	return m, err
}
