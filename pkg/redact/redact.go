// Package redact keeps secrets out of what a process prints. A Writer replaces every secret
// registered with it, and the forms a secret travels in (base64 as in a Basic Authorization
// header, at any alignment; URL and JSON escaping), with "***" in each line written through it.
//
// Lines are the unit: a secret split across Write calls is found as long as it is on one line,
// so a Writer holds back the end of a line until its newline comes, or until Flush.
package redact

import (
	"bytes"
	"io"
	"sort"
	"sync"
)

// Mask replaces a secret.
const Mask = "***"

// maxPending bounds the unfinished line a Writer holds back; past it, what cannot be the start
// of a secret is written.
const maxPending = 64 << 10

// Writer masks registered secrets in what is written through it to the underlying writer. It is
// safe for concurrent use; secrets may be added at any time and apply to lines not written yet.
type Writer struct {
	mu      sync.Mutex
	out     io.Writer
	forms   [][]byte // every form of every secret
	longest int      // the length of the longest form
	pending []byte   // the start of a line whose end has not come yet
}

// New returns a Writer writing to out.
func New(out io.Writer) *Writer {
	return &Writer{out: out}
}

// Add registers secrets; empty ones are ignored.
func (w *Writer) Add(secrets ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range secrets {
		for _, f := range Forms(s) {
			if !w.has(f) {
				w.forms = append(w.forms, []byte(f))
				w.longest = max(w.longest, len(f))
			}
		}
	}
}

func (w *Writer) has(form string) bool {
	for _, f := range w.forms {
		if string(f) == form {
			return true
		}
	}
	return false
}

// String returns s with every registered secret masked.
func (w *Writer) String(s string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.mask([]byte(s)))
}

// Write masks and writes every line p completes, and holds back the rest. It reports len(p)
// written unless the underlying writer fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, p...)
	end := 0 // the end of the last line completed: only p can hold its newline
	if i := bytes.LastIndexAny(p, "\n\r"); i >= 0 {
		end = len(w.pending) - len(p) + i + 1
	}
	if end == 0 && len(w.pending) > maxPending {
		end = w.safeCut()
	}
	if end == 0 {
		return len(p), nil
	}
	out := w.mask(w.pending[:end])
	w.pending = append(w.pending[:0], w.pending[end:]...)
	if _, err := w.out.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// safeCut is where a long unfinished line can be cut: no secret starting before it can end
// after it, and no secret found in it spans it.
func (w *Writer) safeCut() int {
	cut := len(w.pending) - max(w.longest-1, 0)
	spans := w.spans(w.pending)
	for moved := true; moved; {
		moved = false
		for _, s := range spans {
			if s[0] < cut && cut < s[1] {
				cut, moved = s[0], true
			}
		}
	}
	return max(cut, 0)
}

// Flush writes the unfinished line held back, masked.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return nil
	}
	out := w.mask(w.pending)
	w.pending = w.pending[:0]
	_, err := w.out.Write(out)
	return err
}

// Close flushes; it does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }

// mask returns text with every span covered by a form replaced by one Mask.
func (w *Writer) mask(text []byte) []byte {
	spans := w.spans(text)
	if len(spans) == 0 {
		return append([]byte(nil), text...)
	}
	out := make([]byte, 0, len(text))
	at := 0
	for _, s := range spans {
		out = append(append(out, text[at:s[0]]...), Mask...)
		at = s[1]
	}
	return append(out, text[at:]...)
}

// spans finds every occurrence of every form, overlapping ones included, and merges them into
// sorted, disjoint [start, end) spans.
func (w *Writer) spans(text []byte) [][2]int {
	var found [][2]int
	for _, f := range w.forms {
		for from := 0; ; {
			i := bytes.Index(text[from:], f)
			if i < 0 {
				break
			}
			found = append(found, [2]int{from + i, from + i + len(f)})
			from += i + 1
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i][0] < found[j][0] })
	var merged [][2]int
	for _, s := range found {
		if n := len(merged); n > 0 && s[0] <= merged[n-1][1] {
			merged[n-1][1] = max(merged[n-1][1], s[1])
			continue
		}
		merged = append(merged, s)
	}
	return merged
}
