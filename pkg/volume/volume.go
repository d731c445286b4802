// Package volume is the one door through which a put reaches the files and directories its params
// name (tag_file, additional_tags, build_args_file, labels_file, the Dockerfile, secrets' source,
// the build context, archives and image directories). Those paths come from the pipeline, but the
// files come from repositories, and a pull request can add a symlink: a relative path is therefore
// resolved beneath the work dir with os.Root, which refuses ".." and symlinks leading out of it. An
// absolute path is the pipeline author's own choice and is used as written.
//
// Files read here are regular files of bounded size, and the errors never carry their content.
package volume

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Bounds on what ReadFile reads.
const (
	MaxParamFile  int64 = 1 << 20   // tag_file, additional_tags, build_args_file, labels_file
	MaxDockerfile int64 = 4 << 20   // a Dockerfile
	MaxSecret     int64 = 500 << 10 // a build secret, BuildKit's bound
)

// MaxQuote is the longest excerpt of a file's content an error may quote, and only for a file
// inside the work dir (File.Quotable).
const MaxQuote = 128

var (
	// ErrOutside: a relative path that leaves the work dir, through ".." or a symlink.
	ErrOutside = errors.New("resolves outside the work dir (a relative path must stay in it; write an absolute path to read elsewhere)")
	// ErrNotRegular: a device, fifo, socket or directory where a file was expected.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: a file over ReadFile's bound.
	ErrTooLarge = errors.New("larger than")
)

// Error is a refused or failed access: Field is the param, Path the path as the pipeline wrote it.
// Its message never holds the file's content.
type Error struct {
	Field, Path string
	Err         error
}

func (e *Error) Error() string { return e.Field + ": " + e.Path + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Volume is a put's work dir, the directory Concourse passes as argv[1].
type Volume struct {
	dir string
}

// New is the volume at dir.
func New(dir string) Volume {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return Volume{dir: filepath.Clean(dir)}
}

// File is a file read through the volume.
type File struct {
	Data []byte
	// Path is where it was read: absolute, for handing on to code that reads it again.
	Path string
	// Inside: the file resolved beneath the work dir, so short excerpts may be quoted in errors.
	Inside bool
}

// Quotable reports whether s, text from f, may appear in an error: only a short excerpt of a
// file inside the work dir; content reached through an absolute path elsewhere never does.
func (f File) Quotable(s string) bool { return f.Inside && len(s) <= MaxQuote }

// ReadFile reads the regular file the param field names, at most max bytes.
func (v Volume) ReadFile(field, name string, max int64) (File, error) {
	f, path, inside, err := v.open(name)
	if err != nil {
		return File{}, &Error{Field: field, Path: name, Err: err}
	}
	defer f.Close()
	data, err := readRegular(f, max)
	if err != nil {
		return File{}, &Error{Field: field, Path: name, Err: err}
	}
	return File{Data: data, Path: path, Inside: inside}, nil
}

// Path checks the path the param field names and returns it absolute, for code that opens it
// itself (archives, image directories, the build context). A relative path must resolve beneath
// the work dir; one that does not exist is returned unchecked, for its reader to report.
func (v Volume) Path(field, name string) (string, error) {
	rel, inside := v.local(name)
	if !inside {
		return name, nil
	}
	root, err := os.OpenRoot(v.dir)
	if err != nil {
		return "", &Error{Field: field, Path: name, Err: err}
	}
	defer root.Close()
	if _, err := root.Stat(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", &Error{Field: field, Path: name, Err: cause(err)}
	}
	return filepath.Join(v.dir, rel), nil
}

// local says whether name is resolved in the work dir, and its path there: relative paths, and
// absolute ones that lead into it (so its symlinks cannot lead out).
func (v Volume) local(name string) (string, bool) {
	if !filepath.IsAbs(name) {
		return name, true
	}
	rel, err := filepath.Rel(v.dir, filepath.Clean(name))
	if err != nil || !filepath.IsLocal(rel) {
		return "", false
	}
	return rel, true
}

// open opens name without blocking (a fifo would) and says where it resolved.
func (v Volume) open(name string) (f *os.File, path string, inside bool, err error) {
	const flags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY
	rel, inside := v.local(name)
	if !inside {
		if err := checkRegular(os.Stat(name)); err != nil {
			return nil, "", false, err
		}
		f, err := os.OpenFile(name, flags, 0)
		return f, name, false, cause(err)
	}
	root, err := os.OpenRoot(v.dir)
	if err != nil {
		return nil, "", false, err
	}
	defer root.Close()
	if err := checkRegular(root.Stat(rel)); err != nil {
		return nil, "", false, err
	}
	f, err = root.OpenFile(rel, flags, 0)
	return f, filepath.Join(v.dir, rel), true, cause(err)
}

// checkRegular refuses anything but a regular file before it is opened: opening a device can act.
func checkRegular(info fs.FileInfo, err error) error {
	if err != nil {
		return cause(err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%w (%s)", ErrNotRegular, kind(info.Mode()))
	}
	return nil
}

// readRegular reads f, which must still be a regular file of at most max bytes.
func readRegular(f *os.File, max int64) ([]byte, error) {
	info, err := f.Stat()
	if err := checkRegular(info, err); err != nil {
		return nil, err
	}
	tooLarge := fmt.Errorf("%w %s", ErrTooLarge, Size(max))
	if info.Size() > max {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1)) // the file may grow after Stat
	if err != nil {
		return nil, cause(err)
	}
	if int64(len(data)) > max {
		return nil, tooLarge
	}
	return data, nil
}

// cause drops a *PathError's operation and path (the caller names the param's path) and names
// os.Root's refusal, which os does not export.
func cause(err error) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Err.Error() == "path escapes from parent" {
		return ErrOutside
	}
	return pe.Err
}

func kind(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&fs.ModeDevice != 0:
		return "a device"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "mode " + strings.TrimLeft(mode.Type().String(), "-")
	}
}

// Size writes a bound in KiB or MiB: "1 MiB", "500 KiB".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
