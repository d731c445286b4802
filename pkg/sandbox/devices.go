package sandbox

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// device is a device node a step expects in /dev.
type device struct {
	name         string
	major, minor uint32
}

var devices = []device{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}

// Stand-ins, where no device can be made (a user namespace):
const (
	// nullBound is the size at which the /dev/null stand-in, an ordinary file, is emptied.
	nullBound = 1 << 20
	// zeroSize is the size of the /dev/zero stand-in, a file that is one hole: it reads as zeros.
	zeroSize = 1 << 40
)

// devices stands in for the /dev tmpfs: the devices a step expects, made where the container
// may (no user namespace), else stand-ins (see standIn); a /dev/shm. Whatever the step leaves in
// /dev is removed afterwards, and /dev gets its time back (buildah removes the /dev it made for
// the step only if that is unchanged).
func (s *staged) devices() error {
	info, err := s.root.Lstat("dev")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.undo = append(s.undo, func() error { return s.root.RemoveAll("dev") })
		if err := s.root.Mkdir("dev", 0o755); err != nil {
			return err
		}
	case err != nil:
		return err
	case !info.IsDir():
		return errors.New("/dev in the step's root is not a directory")
	}
	before, err := s.names("dev")
	if err != nil {
		return err
	}
	if info, err = s.root.Stat("dev"); err != nil {
		return err
	}
	var feeders sync.WaitGroup
	stop := make(chan struct{})
	s.undo = append(s.undo, func() error {
		close(stop)
		feeders.Wait()
		return errors.Join(s.removeNew("dev", before), s.root.Chtimes("dev", atime(info), info.ModTime()))
	})
	dir, err := s.root.Open("dev")
	if err != nil {
		return err
	}
	defer dir.Close()
	for _, d := range devices {
		if before[d.name] {
			continue
		}
		var err error = unix.EPERM
		if !s.standIns {
			err = unix.Mknodat(int(dir.Fd()), d.name, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor)))
		}
		if err == nil {
			err = unix.Fchmodat(int(dir.Fd()), d.name, 0o666, 0)
		} else if errors.Is(err, unix.EPERM) {
			err = s.standIn(dir, d.name, stop, &feeders)
		}
		if err != nil {
			return err
		}
	}
	if before["shm"] {
		return nil
	}
	if err := s.root.Mkdir("dev/shm", 0o700); err != nil {
		return err
	}
	return s.root.Chmod("dev/shm", fs.ModeDir|fs.ModeSticky|0o777)
}

// standIn makes what stands in for a device no one may make here, until stop:
//   - null: an ordinary file, emptied whenever it passes nullBound;
//   - zero: an ordinary file that is one hole of zeroSize bytes;
//   - random, urandom: a fifo fed with random bytes for as long as anyone reads it;
//   - full, tty: nothing (a step here has no terminal).
func (s *staged) standIn(dir *os.File, name string, stop chan struct{}, feeders *sync.WaitGroup) error {
	file := path.Join("dev", name)
	switch name {
	case "null", "zero":
		f, err := s.root.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if name == "zero" {
			err = f.Truncate(zeroSize)
		}
		if err = errors.Join(err, f.Chmod(0o666)); err != nil {
			f.Close()
			return err
		}
		if name == "zero" {
			return f.Close()
		}
		feeders.Add(1)
		go func() {
			defer feeders.Done()
			defer f.Close()
			keepSmall(f, stop)
		}()
		return nil
	case "random", "urandom":
		if err := unix.Mkfifoat(int(dir.Fd()), name, 0o666); err != nil {
			return err
		}
		if err := unix.Fchmodat(int(dir.Fd()), name, 0o666, 0); err != nil {
			return err
		}
		fifo, err := s.root.OpenFile(file, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		// A read of up to 1 MiB then finds as much waiting, as from the device (best effort:
		// the kernel may cap a pipe lower).
		_, _ = unix.FcntlInt(fifo.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		feeders.Add(1)
		go func() {
			defer feeders.Done()
			feedRandom(fifo, stop)
		}()
		return nil
	}
	return nil
}

// keepSmall empties f whenever it passes nullBound, until stop.
func keepSmall(f *os.File, stop chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if info, err := f.Stat(); err == nil && info.Size() > nullBound {
				_ = f.Truncate(0)
			}
		}
	}
}

// feedRandom writes random bytes into a fifo it holds open for reading and writing (so that
// opening it never blocks a step, and a write never fails for want of a reader), until stop.
// Its writes do not block: with the pipe full, it waits a little and looks at stop again.
func feedRandom(fifo *os.File, stop chan struct{}) {
	defer fifo.Close()
	fd := int(fifo.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		rand.Read(buf)
		for rest := buf; len(rest) > 0; {
			n, err := unix.Write(fd, rest)
			switch {
			case errors.Is(err, unix.EAGAIN):
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			case err != nil:
				return
			default:
				rest = rest[n:]
			}
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}
