package checked_test

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/checked"
)

func TestCopy(t *testing.T) {
	blob := []byte("the blob's bytes")
	digest, size, _ := v1.SHA256(bytes.NewReader(blob))
	other, _, _ := v1.SHA256(strings.NewReader("other bytes"))
	for _, tc := range []struct {
		name   string
		data   []byte
		digest v1.Hash
		size   int64
		want   string // "" for success
	}{
		{"the blob", blob, digest, size, ""},
		{"the blob, size unknown", blob, digest, checked.Unknown, ""},
		{"other bytes", blob, other, size, "hash to " + digest.String() + ": refused"},
		{"short", blob[:5], digest, size, "got 5 bytes, the manifest lists 16: refused"},
		{"long", append(blob, 'x'), digest, size, "more than the 16 bytes the manifest lists: refused"},
		{"sha512", blob, v1.Hash{Algorithm: "sha512", Hex: digest.Hex}, size, "unsupported digest algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := checked.Copy(&out, bytes.NewReader(tc.data), tc.digest, tc.size)
			if tc.want == "" {
				if err != nil || !bytes.Equal(out.Bytes(), blob) {
					t.Fatalf("got %q, %v; want the blob", out.Bytes(), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.size != checked.Unknown && int64(out.Len()) > tc.size {
				t.Fatalf("%d bytes passed, more than the size %d", out.Len(), tc.size)
			}
		})
	}
}
