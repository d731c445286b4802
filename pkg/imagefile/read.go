// Package imagefile reads and writes images as files: OCI archives (an OCI layout in a tar),
// OCI layout directories, docker archives (docker save/load), root filesystems, and the
// directories that this resource, registry-image-resource and docker-image-resource leave
// behind after a get. Layers keep their compressed bytes; nothing is decompressed to be read.
// Stage and StageArchive fetch an image's blobs once, in parallel and checked, into a private
// blob directory or straight into the OCI archive being written; every other file of a get is
// made from there, each blob read as soon as it has checked out. Root filesystems are unpacked
// by package extract.
package imagefile

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format is how an image is stored; the names are containers/image transport names.
type Format string

// The formats Open understands.
const (
	OCIArchive    Format = "oci-archive"    // an OCI layout in a tar (image.tar)
	OCILayout     Format = "oci"            // an OCI layout directory (oci/)
	DockerArchive Format = "docker-archive" // docker save's tar (docker-image-resource's "image")
)

// RefNameAnnotation names an image inside an OCI layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Archive is an opened image file.
type Archive struct {
	Format Format
	Path   string   // the file or layout directory, as the format's transport takes it
	Name   string   // the reference it was saved under ("registry/repo:tag"), "" when unknown
	Digest v1.Hash  // manifest digest of Image
	Image  v1.Image // the image for the requested platform; layers read lazily, as stored
	// GetDigest is the digest file of the get directory the image was found in: the digest the
	// registry serves it under, which Digest is not when the archive was re-encoded (a docker
	// archive) or holds one platform of an index. "" when there is no such file.
	GetDigest string
	close     func() error
}

// Close releases the open file behind the archive.
func (a *Archive) Close() error {
	if a.close == nil {
		return nil
	}
	return a.close()
}

// Open detects the image at path, a file or the directory of a get, and opens it.
// Directories are searched for image.tar, oci/ and image (docker archive), in that order.
func Open(path string, platform v1.Platform) (*Archive, error) {
	format, file, err := Detect(path)
	if err != nil {
		return nil, err
	}
	var a *Archive
	switch format {
	case OCIArchive:
		a, err = openOCIArchive(file, platform)
	case OCILayout:
		a, err = openOCILayout(file, platform)
	case DockerArchive:
		a, err = openDockerArchive(file, "")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if info, statErr := os.Stat(path); statErr == nil && info.IsDir() {
		if saved := savedName(path); saved != "" {
			a.Name = saved
		}
		a.GetDigest = savedDigest(path)
	}
	return a, nil
}

// Detect tells the format of the image at path and the file or directory that holds it.
func Detect(path string) (Format, string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", path, errors.Unwrap(err))
	}
	if !info.IsDir() {
		format, err := detectFile(path)
		return format, path, err
	}
	for _, candidate := range []string{"image.tar", "oci", "image"} {
		p := filepath.Join(path, candidate)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if candidate == "oci" {
			if _, err := os.Stat(filepath.Join(p, "oci-layout")); err != nil {
				return "", "", fmt.Errorf("%s: has no oci-layout file, expected an OCI layout", p)
			}
			return OCILayout, p, nil
		}
		format, err := detectFile(p)
		return format, p, err
	}
	if _, err := os.Stat(filepath.Join(path, "oci-layout")); err == nil {
		return OCILayout, path, nil
	}
	hint := ""
	if _, err := os.Stat(filepath.Join(path, "rootfs")); err == nil {
		hint = " (rootfs/, what a get writes without params, is a filesystem, not an image)"
	}
	return "", "", fmt.Errorf("%s: no image found: expected image.tar (format: oci), oci/ (format: oci-layout) or image (save: true) from a get%s", path, hint)
}

// detectFile reads a tar's entry names: oci-layout means an OCI archive, manifest.json a docker archive.
func detectFile(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(&seekReader{f: f})
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("%s: a tar without oci-layout or manifest.json, expected an OCI or docker archive", path)
		}
		if err != nil {
			return "", fmt.Errorf("%s: not a readable tar archive: %w", path, err)
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "oci-layout":
			return OCIArchive, nil
		case "manifest.json":
			return DockerArchive, nil
		}
	}
}

// savedName is the reference the repository and tag files of a get directory name.
func savedName(dir string) string {
	repo, err := os.ReadFile(filepath.Join(dir, "repository"))
	if err != nil || strings.TrimSpace(string(repo)) == "" {
		return ""
	}
	tag, _ := os.ReadFile(filepath.Join(dir, "tag"))
	ref := strings.TrimSpace(string(repo))
	if t := strings.TrimSpace(string(tag)); t != "" {
		ref += ":" + t
	}
	return ref
}

// savedDigest is the digest file of a get directory when it holds a sha256 digest, else "".
func savedDigest(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "digest"))
	if err != nil {
		return ""
	}
	h, err := v1.NewHash(strings.TrimSpace(string(data)))
	if err != nil || h.Algorithm != "sha256" {
		return ""
	}
	return h.String()
}

// RegistryDigest is the digest to name the image by: the get's digest when known, else Digest.
func (a *Archive) RegistryDigest() string {
	if a.GetDigest != "" {
		return a.GetDigest
	}
	return a.Digest.String()
}

func openDockerArchive(path, ref string) (*Archive, error) {
	var tag *name.Tag
	if ref != "" {
		t, err := name.NewTag(ref)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", ref, err)
		}
		tag = &t
	}
	if err := checkDockerArchive(path); err != nil {
		return nil, err
	}
	img, err := tarball.ImageFromPath(path, tag)
	if err != nil {
		return nil, fmt.Errorf("read docker archive: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("read docker archive: %w", err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	a := &Archive{Format: DockerArchive, Path: path, Image: img, Digest: digest}
	if err == nil && len(m) > 0 && len(m[0].RepoTags) > 0 {
		a.Name = m[0].RepoTags[0]
	}
	if ref != "" {
		a.Name = ref
	}
	return a, nil
}

// checkDockerArchive makes sure every config and layer file manifest.json names is in the tar.
func checkDockerArchive(path string) error {
	t, err := indexTar(path)
	if err != nil {
		return err
	}
	defer t.Close()
	raw, err := readAll(t, "manifest.json")
	if err != nil {
		return fmt.Errorf("read manifest.json: %w", err)
	}
	var manifest tarball.Manifest
	if err := json.Unmarshal(raw, &manifest); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	for _, image := range manifest {
		for _, file := range append([]string{image.Config}, image.Layers...) {
			if _, ok := t.entries[file]; !ok {
				return fmt.Errorf("%s is listed in manifest.json but missing: the archive is incomplete", file)
			}
		}
	}
	return nil
}

// OpenDockerArchive opens the image named ref ("" for the only one) in a docker archive.
func OpenDockerArchive(path, ref string) (*Archive, error) { return openDockerArchive(path, ref) }

func openOCIArchive(path string, platform v1.Platform) (*Archive, error) {
	blobs, err := indexTar(path)
	if err != nil {
		return nil, err
	}
	a, err := openLayout(blobs, platform)
	if err != nil {
		blobs.Close()
		return nil, err
	}
	a.Format, a.Path, a.close = OCIArchive, path, blobs.Close
	return a, nil
}

func openOCILayout(dir string, platform v1.Platform) (*Archive, error) {
	a, err := openLayout(dirBlobs(dir), platform)
	if err != nil {
		return nil, err
	}
	a.Format, a.Path = OCILayout, dir
	return a, nil
}

// blobStore reads the files of an OCI layout: index.json and blobs/sha256/<hex>.
type blobStore interface {
	open(file string) (io.ReadCloser, error)
	size(file string) (int64, error)
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

func readAll(s blobStore, file string) ([]byte, error) {
	rc, err := s.open(file)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// openLayout picks the platform's image from index.json, descending into nested indexes.
func openLayout(s blobStore, platform v1.Platform) (*Archive, error) {
	raw, err := readAll(s, "index.json")
	if err != nil {
		return nil, fmt.Errorf("read index.json: %w", err)
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	refName := ""
	for depth := 0; depth < 4; depth++ {
		desc, err := pick(index.Manifests, platform)
		if err != nil {
			return nil, err
		}
		if refName == "" {
			refName = desc.Annotations[RefNameAnnotation]
		}
		manifest, err := readAll(s, blobPath(desc.Digest))
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", desc.Digest, err)
		}
		if !desc.MediaType.IsIndex() {
			img, err := layoutImage(s, manifest, desc.MediaType)
			if err != nil {
				return nil, err
			}
			return &Archive{Name: refName, Digest: desc.Digest, Image: img}, nil
		}
		if err := json.Unmarshal(manifest, &index); err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
	}
	return nil, errors.New("indexes nested too deep")
}

// ErrNoPlatform says an index holds no image for the platform asked.
var ErrNoPlatform = errors.New("no image for platform")

// pick chooses the descriptor for the platform: the only one, or the one whose platform matches.
func pick(descs []v1.Descriptor, platform v1.Platform) (v1.Descriptor, error) {
	var candidates []v1.Descriptor
	for _, d := range descs {
		if d.MediaType.IsImage() || d.MediaType.IsIndex() {
			candidates = append(candidates, d)
		}
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	var seen []string
	for _, d := range candidates {
		if d.Platform != nil && d.Platform.Satisfies(platform) {
			return d, nil
		}
		if d.Platform != nil {
			seen = append(seen, d.Platform.String())
		}
	}
	if len(candidates) == 0 {
		return v1.Descriptor{}, errors.New("index.json lists no image")
	}
	return v1.Descriptor{}, fmt.Errorf("%w %s (found %s)", ErrNoPlatform, platform.String(), strings.Join(seen, ", "))
}

func layoutImage(s blobStore, manifest []byte, mt types.MediaType) (v1.Image, error) {
	m, err := v1.ParseManifest(strings.NewReader(string(manifest)))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if err := checkBlob(s, d); err != nil {
			return nil, err
		}
	}
	return partial.CompressedToImage(&storedImage{store: s, raw: manifest, mediaType: mt, manifest: m})
}

// checkBlob makes sure a blob the manifest lists is there, whole.
func checkBlob(s blobStore, d v1.Descriptor) error {
	size, err := s.size(blobPath(d.Digest))
	if err != nil {
		return fmt.Errorf("blob %s is missing", d.Digest)
	}
	if size != d.Size {
		return fmt.Errorf("blob %s has %d bytes, the manifest says %d: the archive is truncated or corrupt", d.Digest, size, d.Size)
	}
	return nil
}

// storedImage is an image whose blobs are files of an OCI layout.
type storedImage struct {
	store     blobStore
	raw       []byte
	mediaType types.MediaType
	manifest  *v1.Manifest
}

func (i *storedImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storedImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }
func (i *storedImage) RawConfigFile() ([]byte, error) {
	return readAll(i.store, blobPath(i.manifest.Config.Digest))
}

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.manifest.Config.Digest {
		return storedLayer{i.store, i.manifest.Config}, nil
	}
	for _, l := range i.manifest.Layers {
		if l.Digest == h {
			return storedLayer{i.store, l}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not in the manifest", h)
}

type storedLayer struct {
	store blobStore
	desc  v1.Descriptor
}

func (l storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l storedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.store.open(blobPath(l.desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("layer %s is missing: %w", l.desc.Digest, err)
	}
	return rc, nil
}

// dirBlobs is an OCI layout directory.
type dirBlobs string

func (d dirBlobs) open(file string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(file)))
}

func (d dirBlobs) size(file string) (int64, error) {
	info, err := os.Stat(filepath.Join(string(d), filepath.FromSlash(file)))
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// tarBlobs is an OCI layout inside a tar file, read in place: entries are sections of the file.
type tarBlobs struct {
	f       *os.File
	entries map[string]*io.SectionReader
}

func indexTar(path string) (*tarBlobs, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	sr := &seekReader{f: f}
	tr := tar.NewReader(sr)
	t := &tarBlobs{f: f, entries: map[string]*io.SectionReader{}}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("not a readable tar archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			t.entries[strings.TrimPrefix(hdr.Name, "./")] = io.NewSectionReader(f, sr.pos, hdr.Size)
		}
	}
}

func (t *tarBlobs) open(file string) (io.ReadCloser, error) {
	section, ok := t.entries[file]
	if !ok {
		return nil, fmt.Errorf("%s: not in the archive", file)
	}
	return io.NopCloser(io.NewSectionReader(section, 0, section.Size())), nil
}

func (t *tarBlobs) size(file string) (int64, error) {
	section, ok := t.entries[file]
	if !ok {
		return 0, fmt.Errorf("%s: not in the archive", file)
	}
	return section.Size(), nil
}

func (t *tarBlobs) Close() error { return t.f.Close() }

// seekReader tracks its offset so tar entries can be located, and lets tar skip entry bodies by seeking.
type seekReader struct {
	f   *os.File
	pos int64
}

func (r *seekReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.pos += int64(n)
	return n, err
}

func (r *seekReader) Seek(offset int64, whence int) (int64, error) {
	pos, err := r.f.Seek(offset, whence)
	if err == nil {
		r.pos = pos
	}
	return pos, err
}

// SavedIndex is the multi-platform index an OCI layout directory holds, nil when it holds one
// image: the only entry of index.json when that entry is an index (this resource's oci-layout
// gets), or index.json itself when it lists several images each for a platform
// (registry-image-resource's). Blobs are read lazily; a registry refuses any whose bytes do not
// match its digest.
func SavedIndex(dir string) (v1.ImageIndex, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(m.Manifests) == 1 && m.Manifests[0].MediaType.IsIndex() {
		return idx.ImageIndex(m.Manifests[0].Digest)
	}
	if len(m.Manifests) < 2 {
		return nil, nil
	}
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() || d.Platform == nil {
			return nil, nil
		}
	}
	return idx, nil
}
