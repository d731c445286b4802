// Package progress logs how far a long transfer has come, at most one line every few seconds.
package progress

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
)

// Every is the least time between two progress lines.
const Every = 5 * time.Second

// Meter counts bytes against a total and logs "verb 12.0 MB / 40.0 MB (8.1 MB/s)".
type Meter struct {
	verb  string
	total int64
	log   logrus.FieldLogger
	now   func() time.Time

	mu    sync.Mutex
	done  int64
	start time.Time
	last  time.Time
}

// NewMeter starts a meter for total bytes.
func NewMeter(log logrus.FieldLogger, verb string, total int64) *Meter {
	now := time.Now()
	return &Meter{verb: verb, total: total, log: log, now: time.Now, start: now, last: now}
}

// Add counts n more bytes and logs when the last line is old enough.
func (m *Meter) Add(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.done += n
	now := m.now()
	if now.Sub(m.last) < Every {
		return
	}
	m.last = now
	rate := float64(m.done) / now.Sub(m.start).Seconds()
	m.log.Infof("%s %s / %s (%s/s)", m.verb, Size(m.done), Size(m.total), Size(int64(rate)))
}

// Set records absolute progress, as upload updates report it, and logs like Add.
func (m *Meter) Set(done, total int64) {
	m.mu.Lock()
	m.done, m.total = 0, total
	m.mu.Unlock()
	m.Add(done)
}

// Updates feeds a channel of upload updates into the meter until it is closed.
func (m *Meter) Updates(updates <-chan v1.Update) {
	for u := range updates {
		m.Set(u.Complete, u.Total)
	}
}

// Done logs the final line: the bytes and the time they took.
func (m *Meter) Done() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log.Infof("%s %s in %.1fs", m.verb, Size(m.done), m.now().Sub(m.start).Seconds())
}

// Size writes a byte count for a log line: KB below a MiB, MB above.
func Size(n int64) string {
	const mb = 1 << 20
	if n < mb {
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + " KB"
	}
	return strconv.FormatFloat(float64(n)/mb, 'f', 1, 64) + " MB"
}

// Image wraps img so that reading its layers counts against a meter for the layers' total size.
func Image(img v1.Image, log logrus.FieldLogger, verb string) (v1.Image, *Meter, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, err
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	meter := NewMeter(log, verb, total)
	return &image{Image: img, meter: meter}, meter, nil
}

type image struct {
	v1.Image
	meter *Meter
}

func (i *image) Layers() ([]v1.Layer, error) {
	layers, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for n, l := range layers {
		if out[n], err = i.wrap(l); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (i *image) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.wrap(l)
}

// wrap counts the layer's compressed bytes; its uncompressed stream is derived from them, so
// unpacking a layer is counted too.
func (i *image) wrap(l v1.Layer) (v1.Layer, error) {
	return partial.CompressedToLayer(&layer{inner: l, meter: i.meter})
}

type layer struct {
	inner v1.Layer
	meter *Meter
}

func (l *layer) Digest() (v1.Hash, error)            { return l.inner.Digest() }
func (l *layer) DiffID() (v1.Hash, error)            { return l.inner.DiffID() }
func (l *layer) Size() (int64, error)                { return l.inner.Size() }
func (l *layer) MediaType() (types.MediaType, error) { return l.inner.MediaType() }
func (l *layer) Compressed() (io.ReadCloser, error) {
	rc, err := l.inner.Compressed()
	if err != nil {
		return nil, err
	}
	return &counter{ReadCloser: rc, meter: l.meter}, nil
}

type counter struct {
	io.ReadCloser
	meter *Meter
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.meter.Add(int64(n))
	return n, err
}

// Counting is a body whose bytes, as they are read, are added to N (which others may read).
type Counting struct {
	io.ReadCloser
	N *atomic.Int64
}

func (c Counting) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.N.Add(int64(n))
	return n, err
}
