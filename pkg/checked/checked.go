// Package checked is the resource's one check of a blob's bytes against the digest and size a
// manifest (or a file name) gives: a reader that hashes and counts what passes through it, never
// hands out more than the size, and says at the end whether the bytes were the blob. Every
// download, staged blob and unpacked layer is read through it, and its bytes are used only after
// Check passed.
package checked

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Unknown is the size to give when only the digest is known (a blob named by its digest).
const Unknown = -1

// Reader hashes and counts a blob's bytes as they are read. With a known size, reading past it
// fails at once, and the bytes past it are not returned.
type Reader struct {
	r      io.Reader
	digest v1.Hash
	size   int64
	read   int64
	over   error // set when the stream went on past size
	hash   hash.Hash
}

// NewReader reads the blob named by digest (sha256 only) and size (or Unknown) from r.
func NewReader(r io.Reader, digest v1.Hash, size int64) (*Reader, error) {
	if digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("%s: unsupported digest algorithm", digest)
	}
	return &Reader{r: r, digest: digest, size: size, hash: sha256.New()}, nil
}

func (c *Reader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.size != Unknown && c.read+int64(n) > c.size {
		n = int(c.size - c.read)
		c.over = fmt.Errorf("%s: more than the %d bytes the manifest lists: refused, nothing of it used", c.digest, c.size)
		err = c.over
	}
	c.read += int64(n)
	c.hash.Write(p[:n])
	return n, err
}

// Check says whether the bytes read, once the stream was read to its end, were the blob.
func (c *Reader) Check() error {
	if c.over != nil {
		return c.over
	}
	if c.size != Unknown && c.read != c.size {
		return fmt.Errorf("%s: got %d bytes, the manifest lists %d: refused, nothing of it used", c.digest, c.read, c.size)
	}
	if got := hex.EncodeToString(c.hash.Sum(nil)); got != c.digest.Hex {
		return fmt.Errorf("%s: the bytes received hash to sha256:%s: refused, nothing of it used", c.digest, got)
	}
	return nil
}

// Copy copies the blob from r to w and checks it. w has seen the bytes either way: it must be
// private until Copy returned nil.
func Copy(w io.Writer, r io.Reader, digest v1.Hash, size int64) error {
	c, err := NewReader(r, digest, size)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, c); err != nil && c.over == nil {
		return fmt.Errorf("%s: %w", digest, err)
	}
	return c.Check()
}
