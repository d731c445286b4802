package bench

import (
	"strings"
	"testing"
	"time"
)

func TestCompareLinks(t *testing.T) {
	link := Shape{Delay: 30 * time.Millisecond, Rate: 20e6}
	put := func(wall time.Duration, t Traffic) Row {
		return Row{Peer: "ours", Puts: []Measurement{{Wall: wall, Traffic: t}}}
	}
	loopback := Tables{Tables: []Table{
		{ID: "S1", Base: "debian", Rows: []Row{put(10*time.Second, Traffic{})}},
		{ID: "S2", Base: "debian", Rows: []Row{put(time.Second, Traffic{})}},
	}}
	// S1 moved 100 MB in 10 requests: 5 s + 0.3 s allowed, 5.2 s lost. S2 moved nothing in 10
	// requests: 0.3 s allowed, 0.4 s lost.
	shaped := Tables{Link: link, Tables: []Table{
		{ID: "S1", Base: "debian", Rows: []Row{put(15200*time.Millisecond, Traffic{Down: 60e6, Up: 40e6, Requests: 10})}},
		{ID: "S2", Base: "debian", Rows: []Row{put(1400*time.Millisecond, Traffic{Requests: 10})}},
	}}
	got := CompareLinks(loopback, shaped)
	for _, want := range []string{
		"| S1 | ours | 10.0 | 15.2 | +5.2 | 60.0 MB + 40.0 MB | 10 | 5.3 | yes |",
		"| S2 | ours | 1.0 | 1.4 | +0.4 | 0 B + 0 B | 10 | 0.3 | **no** |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}
