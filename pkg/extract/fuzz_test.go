package extract

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply unpacks arbitrary tar streams, with whiteouts, into a directory that has a sibling
// holding a file, and a symlink to it planted inside: whatever the stream, nothing outside the
// target may change. CI replays the corpus; run it locally with -fuzz=FuzzApply.
func FuzzApply(f *testing.F) {
	for _, entries := range [][]*tar.Header{
		{symlink("e", "/outside"), reg("/e/new/file", "x", 0o644)},
		{symlink("e", "../outside"), dir("e", 0o777), reg("e/f", "x", 0o644)},
		{dir("./", 0o755), reg("./a", "a", 0o4755), {Name: "h", Typeflag: tar.TypeLink, Linkname: "../outside/keep"}},
		{reg("planted/keep", "overwrite", 0o644), reg(".wh.planted", "", 0o644), reg("a/.wh..wh..opq", "", 0o644)},
		{{Name: "../../outside/keep", Typeflag: tar.TypeReg, Mode: 0o644}},
		{{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o644}, {Name: "planted", Typeflag: tar.TypeDir, Mode: 0o777}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range entries {
			body := ""
			if h.Typeflag == tar.TypeReg {
				body, h.Linkname, h.Size = h.Linkname, "", int64(len(h.Linkname))
			}
			tw.WriteHeader(h)
			tw.Write([]byte(body))
		}
		tw.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		out := filepath.Join(base, "outside")
		os.Mkdir(out, 0o750)
		os.WriteFile(filepath.Join(out, "keep"), []byte("keep"), 0o640)
		target := filepath.Join(base, "target")
		os.Mkdir(target, 0o755)
		os.Symlink(out, filepath.Join(target, "planted"))
		root, err := os.OpenRoot(target)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		_ = apply(root, bytes.NewReader(data), true)
		var seen []string
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if p == target || (len(p) > len(target) && p[:len(target)+1] == target+"/") {
				return fs.SkipDir
			}
			seen = append(seen, p)
			return nil
		})
		keep, err := os.ReadFile(filepath.Join(out, "keep"))
		info, _ := os.Stat(out)
		kinfo, _ := os.Stat(filepath.Join(out, "keep"))
		if len(seen) != 3 || err != nil || string(keep) != "keep" || info.Mode().Perm() != 0o750 || kinfo.Mode().Perm() != 0o640 {
			t.Fatalf("outside changed: %v %q %v %v", seen, keep, info.Mode(), err)
		}
	})
}
