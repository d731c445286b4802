package build

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stepHeader matches the line buildah prints when a step starts, e.g.
// "STEP 3/7: RUN make" or "[2/3] STEP 1/4: FROM busybox AS b".
var stepHeader = regexp.MustCompile(`^(?:\[(\d+)/(\d+)\] )?STEP (\d+)(?:/(\d+))?: ([^\n]*)\n$`)

// cacheLine matches the line buildah prints when its layer cache has the running step.
var cacheLine = regexp.MustCompile(`^--> Using cache `)

// commitLine matches the line buildah prints when it commits a stage's
// last step: it ends the current step.
var commitLine = regexp.MustCompile(`^(?:\[\d+/\d+\] )?COMMIT\b`)

// stepLog passes buildah's output through and times each step: a step runs
// from its header to the next header (or COMMIT, or the end of the build),
// and then its header is printed again with the duration:
//
//	STEP 3/7: RUN make
//	...
//	STEP 3/7: RUN make (4.2s)
type stepLog struct {
	mu      sync.Mutex
	w       io.Writer
	steps   []Step
	header  string // header of the running step, "" if none
	started time.Time
}

func newStepLog(w io.Writer) *stepLog { return &stepLog{w: w} }

// Write relies on buildah writing each header line, newline included, in
// one Write call.
func (s *stepLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := stepHeader.FindSubmatch(p); m != nil {
		s.endStep()
		s.startStep(m)
	} else if commitLine.Match(p) {
		s.endStep()
	} else if cacheLine.Match(p) && s.header != "" {
		s.steps[len(s.steps)-1].Cached = true
	}
	return s.w.Write(p)
}

// finish ends the running step and returns all steps.
func (s *stepLog) finish() []Step {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endStep()
	return s.steps
}

func (s *stepLog) startStep(m [][]byte) {
	atoi := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	s.steps = append(s.steps, Step{
		Stage:       atoi(m[1]),
		Stages:      atoi(m[2]),
		Number:      atoi(m[3]),
		Total:       atoi(m[4]),
		Instruction: string(m[5]),
	})
	s.header = strings.TrimSuffix(string(m[0]), "\n")
	s.started = time.Now()
}

func (s *stepLog) endStep() {
	if s.header == "" {
		return
	}
	d := time.Since(s.started)
	s.steps[len(s.steps)-1].Duration = d
	fmt.Fprintf(s.w, "%s (%.1fs)\n", s.header, d.Seconds())
	s.header = ""
}
