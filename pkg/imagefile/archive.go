package imagefile

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imagesmith/buildah-image-resource/pkg/checked"
)

const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// WriteOCIArchive writes img as an OCI layout packed in a tar at path, its layers as stored (same
// compressed digests), each checked against its digest. index.json names it refName. The file
// appears only when whole.
func WriteOCIArchive(path string, img v1.Image, refName string) error {
	s, err := StageArchive(img, path, refName, DefaultJobs)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer s.Close()
	if err := s.Keep(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// archivePlan is where every byte of an image's OCI archive goes, known from the manifest alone:
// the entries blobs/, blobs/sha256/, oci-layout, the layers in the manifest's order, the config,
// the manifest and index.json, then the two zero blocks that end a tar. Blobs can then be written
// to their places in any order.
type archivePlan struct {
	size  int64
	fixed []placed            // the headers and the small files, known now
	files map[string]extent   // every file's data (a layer listed twice: its first place)
	blobs map[v1.Hash][]int64 // where each blob's data goes (a layer listed twice: twice)
}

type extent struct{ off, size int64 }

type placed struct {
	off  int64
	data []byte
}

func planArchive(m imageManifest, refName string) (*archivePlan, error) {
	p := &archivePlan{blobs: map[v1.Hash][]int64{}, files: map[string]extent{}}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := p.add(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}, nil); err != nil {
			return nil, err
		}
	}
	if err := p.addFile("oci-layout", []byte(ociLayoutFile)); err != nil {
		return nil, err
	}
	for _, desc := range append(append([]v1.Descriptor{}, m.parsed.Layers...), m.parsed.Config) {
		if desc.Size < 0 || desc.Size > maxBlobSize {
			return nil, fmt.Errorf("blob %s: the manifest declares %d bytes: refused", desc.Digest, desc.Size)
		}
		name := blobPath(desc.Digest)
		if err := p.add(&tar.Header{Name: name, Mode: 0o644, Size: desc.Size, ModTime: epoch, Typeflag: tar.TypeReg}, nil); err != nil {
			return nil, err
		}
		p.blobs[desc.Digest] = append(p.blobs[desc.Digest], p.size-paddedSize(desc.Size))
	}
	desc := v1.Descriptor{MediaType: m.mediaType, Size: int64(len(m.raw))}
	desc.Digest, _, _ = v1.SHA256(bytes.NewReader(m.raw))
	if refName != "" {
		desc.Annotations = map[string]string{RefNameAnnotation: refName}
	}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	if err != nil {
		return nil, err
	}
	if err := p.addFile(blobPath(desc.Digest), m.raw); err != nil {
		return nil, err
	}
	if err := p.addFile("index.json", index); err != nil {
		return nil, err
	}
	p.size += 2 * blockSize
	return p, nil
}

const blockSize = 512

// maxBlobSize bounds what a manifest may declare for one blob (a manifest of at most
// registry.MaxManifestSize lists some ten thousand blobs: their places in the archive cannot
// overflow).
const maxBlobSize = 1 << 40

func (p *archivePlan) addFile(name string, data []byte) error {
	return p.add(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}, data)
}

// add places an entry's header, and its data when known, at the end of the archive so far.
func (p *archivePlan) add(hdr *tar.Header, data []byte) error {
	var header bytes.Buffer
	if err := tar.NewWriter(&header).WriteHeader(hdr); err != nil { // writes the header blocks only
		return fmt.Errorf("%s: %w", hdr.Name, err)
	}
	p.fixed = append(p.fixed, placed{p.size, header.Bytes()})
	p.size += int64(header.Len())
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	if _, seen := p.files[hdr.Name]; !seen {
		p.files[hdr.Name] = extent{p.size, hdr.Size}
	}
	if data != nil {
		p.fixed = append(p.fixed, placed{p.size, data})
	}
	p.size += paddedSize(hdr.Size)
	return nil
}

// paddedSize is the room a file's data takes in a tar: whole blocks.
func paddedSize(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// stagingFile is an archive being written in a temporary file beside its path.
type stagingFile struct {
	path string
	f    *os.File
	plan *archivePlan
	kept bool
}

// createStagingFile makes the archive's file at its full size, headers and small files in place,
// zeros where the blobs go.
func createStagingFile(path string, plan *archivePlan) (*stagingFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	s := &stagingFile{path: path, f: f, plan: plan}
	if err := s.layOut(); err != nil {
		s.discard()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

func (s *stagingFile) layOut() error {
	if err := s.f.Truncate(s.plan.size); err != nil {
		return err
	}
	for _, p := range s.plan.fixed {
		if _, err := s.f.WriteAt(p.data, p.off); err != nil {
			return err
		}
	}
	return nil
}

// blobs reads the archive's files in place.
func (s *stagingFile) blobs() blobStore {
	t := &tarBlobs{f: s.f, entries: map[string]*io.SectionReader{}}
	for name, e := range s.plan.files {
		t.entries[name] = io.NewSectionReader(s.f, e.off, e.size)
	}
	return t
}

// put writes a blob to its place in the archive, checked on the way; a layer listed twice is
// copied to its second place once checked.
func (s *stagingFile) put(desc v1.Descriptor, r io.Reader) error {
	offs := s.plan.blobs[desc.Digest]
	if len(offs) == 0 {
		return fmt.Errorf("%s: not a blob of the image", desc.Digest)
	}
	if err := checked.Copy(io.NewOffsetWriter(s.f, offs[0]), r, desc.Digest, desc.Size); err != nil {
		return err
	}
	for _, off := range offs[1:] {
		if _, err := io.Copy(io.NewOffsetWriter(s.f, off), io.NewSectionReader(s.f, offs[0], desc.Size)); err != nil {
			return err
		}
	}
	return nil
}

// keep moves the archive to its path.
func (s *stagingFile) keep() error {
	if err := s.f.Chmod(0o644); err != nil {
		return err
	}
	if err := os.Rename(s.f.Name(), s.path); err != nil {
		return err
	}
	s.kept = true
	return nil
}

// discard closes the file and removes it unless it was kept.
func (s *stagingFile) discard() error {
	err := s.f.Close()
	if !s.kept {
		return os.Remove(s.f.Name())
	}
	return err
}
