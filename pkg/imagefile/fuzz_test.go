package imagefile

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzOpen feeds arbitrary bytes to the archive detector and reader: it must return an image or
// an error, never panic or hang.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("not a tar"))
	f.Add(tarOf(map[string]string{"oci-layout": ociLayoutFile, "index.json": `{"schemaVersion":2,"manifests":[]}`}))
	f.Add(tarOf(map[string]string{"oci-layout": ociLayoutFile, "index.json": `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + zeros + `","size":2}]}`}))
	f.Add(tarOf(map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["a:b"],"Layers":["l.tar"]}]`, "c.json": `{}`}))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(path, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Image.Layers()
		_, _ = a.Image.ConfigFile()
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

func tarOf(files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	tw.Close()
	return buf.Bytes()
}
