package registry

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Bounds on what a registry may send to be held in memory: a broken or hostile registry must not
// make a command read gigabytes. Layers are streamed to disk, and checked against their digest.
const (
	MaxManifestSize = 4 << 20  // a manifest or an index
	MaxConfigSize   = 32 << 20 // an image's config
)

// limitManifests fails the download of a manifest or index larger than MaxManifestSize, whatever
// its Content-Length says.
type limitManifests struct{ next http.RoundTripper }

func (l limitManifests) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err != nil || resp.StatusCode/100 != 2 || !strings.Contains(req.URL.Path, "/manifests/") {
		return resp, err
	}
	tooLarge := fmt.Errorf("the registry sent a manifest larger than the limit of %d MiB", MaxManifestSize>>20)
	if resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		resp.Body, resp.ContentLength = io.NopCloser(errReader{tooLarge}), -1
		return resp, nil
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, left: MaxManifestSize, err: tooLarge}
	return resp, nil
}

// limitedBody fails with err once more than left bytes come.
type limitedBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		return int(b.left), b.err
	}
	b.left -= int64(n)
	return n, err
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// checkConfigSize refuses an image whose manifest declares a config larger than MaxConfigSize
// (or of no valid size) before it is read; the read itself stops at the declared size.
func checkConfigSize(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("read manifest: %w", describe(err))
	}
	switch size := m.Config.Size; {
	case size < 0:
		return fmt.Errorf("config declares an invalid size, %d bytes", size)
	case size > MaxConfigSize:
		return fmt.Errorf("config declares %d bytes, more than the limit of %d MiB", size, MaxConfigSize>>20)
	}
	return nil
}

// CheckConfigs applies the config size limit to every image of a fetched index, nested indexes
// included, for what reads them all (an oci-layout get); Get has checked the platform's image.
func (f *Fetched) CheckConfigs() error {
	if f.Index == nil {
		return nil
	}
	return checkIndexConfigs(f.Index)
}

func checkIndexConfigs(idx v1.ImageIndex) error {
	m, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("read index: %w", describe(err))
	}
	for _, d := range m.Manifests {
		var err error
		switch {
		case d.MediaType.IsIndex():
			err = checkChildIndex(idx, d.Digest)
		case d.MediaType.IsImage():
			err = checkChildImage(idx, d.Digest)
		}
		if err != nil {
			return fmt.Errorf("image %s of the index: %w", d.Digest, err)
		}
	}
	return nil
}

func checkChildIndex(idx v1.ImageIndex, digest v1.Hash) error {
	child, err := idx.ImageIndex(digest)
	if err != nil {
		return fmt.Errorf("read index: %w", describe(err))
	}
	return checkIndexConfigs(child)
}

func checkChildImage(idx v1.ImageIndex, digest v1.Hash) error {
	img, err := idx.Image(digest)
	if err != nil {
		return fmt.Errorf("read image: %w", describe(err))
	}
	return checkConfigSize(img)
}
