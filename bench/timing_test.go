package bench

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

func TestTimingLines(t *testing.T) {
	log := `$ out /tmp/build/put
FROM r/b:1 (line 2): using loaded base r/b:1
STEP 5/8: COPY src/ /app/src/ — cache miss: files under src/ changed
storage: overlay in /tmp/build/put/.buildah-image-resource-storage-1 (/tmp/x is on overlayfs, which cannot hold overlay's layers)
loaded base r/b:1 in 0.2s
cache: prepared 3 steps from r/app:latest (1 layers, 20975139 bytes read) in 0.3s
STEP 1/8: FROM r/b:1 (0.0s)
STEP 5/8: COPY src/ /app/src/ (0.4s)
built in 2.2s
pushed r/app@sha256:c9 in 0.1s: uploaded 65.1 KB, the registry had the rest of the image's 21.2 MB
bench: a line of the harness in 9.9s
`
	want := []string{"storage: overlay in /tmp/build/put/.buildah-image-resource-storage-1", "loaded base in 0.2s",
		"cache prepared in 0.3s", "STEP 5/8: COPY 0.4s", "built in 2.2s", "pushed in 0.1s"}
	if got := TimingLines(log); !slices.Equal(got, want) {
		t.Errorf("TimingLines:\n%q\nwant\n%q", got, want)
	}
}

func TestMedianPut(t *testing.T) {
	puts := []Measurement{{Wall: 3 * time.Second, Runs: 3}, {Wall: time.Second, Runs: 1}, {Wall: 2 * time.Second, Runs: 2}}
	if got := MedianPut(puts); got.Runs != 2 {
		t.Errorf("MedianPut: the put of %s, want the one of 2s", got.Wall)
	}
}

// TestContainerReport: the summary's headline is the in-container row, the issue 15 targets
// compare it with the host row, and a missed target says where the time went.
func TestContainerReport(t *testing.T) {
	put := func(seconds float64, timings ...string) Measurement {
		return Measurement{Wall: time.Duration(seconds * float64(time.Second)), PeakMB: 50, Timings: timings}
	}
	inner := func(m Measurement, seconds float64) Measurement {
		m.Inner = time.Duration(seconds * float64(time.Second))
		return m
	}
	rep := &Report{Ours: "ours", Reps: 1, Fan: 1, Container: Container{Info: "dockerd x", StartRuns: []time.Duration{time.Second / 2}, Start: time.Second / 2},
		Tables: []Table{
			{ID: "S1", Base: "debian", Rows: []Row{{Peer: "ours", Puts: []Measurement{put(10)}}, {Peer: "ours (in a container)", Of: "ours", Puts: []Measurement{put(11)}},
				{Peer: "buildah CLI", Puts: []Measurement{put(12)}}}},
			{ID: "S2", Base: "debian", Rows: []Row{{Peer: "ours", Puts: []Measurement{put(0.2, "built in 0.0s")}},
				{Peer: "ours (in a container)", Of: "ours", Puts: []Measurement{inner(put(0.7, "built in 0.0s", "pushed in 0.1s"), 0.2)}}}},
		}}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		"| S1 | debian | **11.0 s, 50 MB** | – | 10.0 s, 50 MB | ×1.10 | buildah CLI: 12.0 s |",
		"- **S2**: 0.70 s in a container (out itself 0.20 s, docker run the other 0.50 s), 0.20 s on the host",
		"| S1: in a container within 1.25× of the host | 11.0 s vs 10.0 s (×1.10) | yes |",
		"| S2: in a container within 1.25× of the host | 0.7 s vs 0.2 s (×3.50) | **no** |",
		"| S2: in a container under 0.3 s | 0.70 s | **no** |",
		"  - in a container: built in 0.0s; pushed in 0.1s\n",
		"| S1 no slower than the fastest peer | 10.0 s vs buildah CLI 12.0 s | yes |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(text, "- **S1**") {
		t.Errorf("S1 met its target but has a where-the-time-goes note")
	}
}

func TestBusyboxTimeScale(t *testing.T) {
	if _, err := os.Stat(gnuTime); err != nil {
		t.Skip("GNU time not installed")
	}
	if _, err := os.Stat(testharness.BusyboxPath); err != nil {
		t.Skip("busybox-static not installed")
	}
	// Debian 12's busybox 1.35 writes 4 times the max RSS; a fixed one, 1.
	if got := busyboxTimeScale(context.Background()); got != 4 && got != 1 {
		t.Errorf("busyboxTimeScale = %d, want 4 (Debian 12's busybox) or 1", got)
	}
}
