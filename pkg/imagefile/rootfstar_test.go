package imagefile

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteRootfsTar: rootfs.tar holds rootfs/ as unpacked: a second name of a file is a hard
// link to the first, a symlink stays a symlink (never followed), modes and directories are kept;
// without rootfs/ nothing is written.
func TestWriteRootfsTar(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	outside := filepath.Join(t.TempDir(), "outside")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o750))
	must(t, os.WriteFile(filepath.Join(root, "etc/a"), []byte("content"), 0o604))
	must(t, os.Link(filepath.Join(root, "etc/a"), filepath.Join(root, "etc/b")))
	must(t, os.WriteFile(outside, []byte("outside"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(root, "escape")))
	must(t, WriteRootfsTar(dir))

	f, err := os.Open(filepath.Join(dir, "rootfs.tar"))
	must(t, err)
	defer f.Close()
	got := map[string]*tar.Header{}
	bodies := map[string]string{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		got[hdr.Name] = hdr
		data, _ := io.ReadAll(tr)
		bodies[hdr.Name] = string(data)
	}
	if h := got["etc/"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o777 != 0o750 {
		t.Errorf("etc/: %+v", h)
	}
	if h := got["etc/a"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o777 != 0o604 || bodies["etc/a"] != "content" ||
		h.PAXRecords["atime"] != "" || h.PAXRecords["ctime"] != "" {
		t.Errorf("etc/a: %+v %q", h, bodies["etc/a"])
	}
	if h := got["etc/b"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "etc/a" {
		t.Errorf("etc/b: %+v, want a hard link to etc/a", h)
	}
	if h := got["escape"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != outside || bodies["escape"] != "" {
		t.Errorf("escape: %+v %q, want the symlink itself", h, bodies["escape"])
	}

	empty := t.TempDir()
	if err := WriteRootfsTar(empty); err == nil {
		t.Error("no rootfs/, want an error")
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("a failed write left %v", entries)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
