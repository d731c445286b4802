package extract

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// verifier hashes and counts a blob's bytes as they are read; check says whether they were the
// blob the digest and size name. Reading more than size bytes fails at once.
type verifier struct {
	r      io.Reader
	digest v1.Hash
	size   int64
	read   int64
	hash   hash.Hash
}

func newVerifier(r io.Reader, digest v1.Hash, size int64) (*verifier, error) {
	if digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("%s: unsupported digest algorithm", digest)
	}
	return &verifier{r: r, digest: digest, size: size, hash: sha256.New()}, nil
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.read += int64(n)
	v.hash.Write(p[:n])
	if v.size >= 0 && v.read > v.size {
		return n, fmt.Errorf("%s: more than the %d bytes the manifest lists", v.digest, v.size)
	}
	return n, err
}

// check is called once the stream was read to its end.
func (v *verifier) check() error {
	if v.size >= 0 && v.read != v.size {
		return fmt.Errorf("%s: got %d bytes, the manifest lists %d: refused, nothing of it used", v.digest, v.read, v.size)
	}
	if got := hex.EncodeToString(v.hash.Sum(nil)); got != v.digest.Hex {
		return fmt.Errorf("%s: the bytes received hash to sha256:%s: refused, nothing of it used", v.digest, got)
	}
	return nil
}
