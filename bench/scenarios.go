package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Measurement is what one put cost.
type Measurement struct {
	Wall    time.Duration
	PeakMB  float64
	Traffic Traffic
	Mirror  int64         // bytes RUN steps downloaded from the Debian mirror, through the counting proxy (S5)
	Runs    int           // RUN steps executed
	Timings []string      // the put's own log lines that say where its time went (TimingLines)
	Inner   time.Duration // in a container: out's own elapsed time inside it (0: not known)
}

// Row is one peer's puts in one scenario.
type Row struct {
	Peer   string
	Of     string // for ours in a container: the row of the same put on the host
	Puts   []Measurement
	Errors []string // the puts that failed, and why
}

// newRow is an empty row of peer p.
func newRow(p Peer) Row {
	r := Row{Peer: p.Name()}
	if c, ok := p.(interface{ HostPeer() string }); ok {
		r.Of = c.HostPeer()
	}
	return r
}

// Table is one scenario on one base.
type Table struct {
	ID, Title, Base, Note string
	Ours                  string // the row the ratios divide by; empty: the report's ours
	Mirror                bool   // show what RUN steps downloaded from the Debian mirror
	Rows                  []Row
}

// Runner runs the scenarios. Every put is a Step: a fresh work directory and cgroup, removed after.
type Runner struct {
	Registry      *Registry
	Mirror        *MirrorProxy // counts what RUN steps download from the Debian mirror (S5)
	Work          string       // scratch directory for contexts and steps
	Cgroup        string       // parent cgroup (v2) of the steps
	LogDir        string       // every step's log is kept here
	Reps          int          // repetitions of S1, S2, S3 and S5
	FanOut        int          // puts of S4
	BlobMB        int          // size of the app's RUN output
	Packages      string       // what S5's RUN installs with apt-get
	Peers         []Peer       // peers of every scenario; Peers[0] is ours
	FanPeers      []Peer       // peers of S4
	PkgPeers      []Peer       // peers of S5
	PlatformPeers []Peer       // peers of S6 and S6n (tools that build several platforms into one index)
	Only          []string     // the scenarios to run (Scenarios); empty: all
	Progress      io.Writer

	steps int
}

// Scenarios are the scenario IDs, in the order they run.
var Scenarios = []string{"S1", "S1m", "S2", "S2m", "S3", "S4", "S5", "S6", "S6n"}

// wants says whether scenario id is to run.
func (r *Runner) wants(id string) bool {
	if len(r.Only) == 0 {
		return true
	}
	for _, o := range r.Only {
		if strings.EqualFold(o, id) {
			return true
		}
	}
	return false
}

// Run runs the scenarios on base and returns their tables. S5 runs on the Debian base only
// (it installs Debian packages).
func (r *Runner) Run(ctx context.Context, base *Base) ([]Table, error) {
	contexts := filepath.Join(r.Work, "contexts", base.Name)
	app := func(change int) string { return filepath.Join(contexts, fmt.Sprintf("app-%d", change)) }
	for change := 0; change <= r.Reps; change++ {
		if err := WriteApp(app(change), base, change, r.BlobMB); err != nil {
			return nil, err
		}
	}
	multi := filepath.Join(contexts, "multistage")
	if err := WriteMultiStage(multi, base); err != nil {
		return nil, err
	}
	repo := func(p Peer, what string) string {
		return fmt.Sprintf("%s/bench/%s/%s/%s", r.Registry.Host, base.Name, slug(p.Name()), what)
	}
	cache := &Cache{From: "latest", To: "latest"}
	s1 := func(p Peer, rep int) (string, Job) {
		return app(0), Job{Base: base, Repo: repo(p, fmt.Sprintf("app-cold-%d", rep)), Tag: "latest", Cache: cache}
	}
	s1m := func(p Peer, rep int) (string, Job) {
		return multi, Job{Base: base, Repo: repo(p, fmt.Sprintf("ms-cold-%d", rep)), Tag: "latest", Cache: cache}
	}
	// The last cold put of each peer is the "previous pipeline run" whose cache S2 and S3 use:
	// when S1 (S1m) is not run, that put alone runs first, unreported.
	seed := func(p Peer, what string) string { return repo(p, fmt.Sprintf("%s-cold-%d", what, r.Reps)) }
	var tables []Table
	if r.wants("S1") {
		tables = append(tables, r.scenario(ctx, "S1", "cold: load base + build + push (remote cache export configured)", base, r.Peers, "app", s1))
	} else if r.wants("S2") || r.wants("S3") {
		r.seed(ctx, "S1", base, s1)
	}
	if r.wants("S1m") {
		tables = append(tables, r.scenario(ctx, "S1m", "cold, multi-stage build", base, r.Peers, "multistage", s1m))
	} else if r.wants("S2m") {
		r.seed(ctx, "S1m", base, s1m)
	}
	if r.wants("S2") {
		tables = append(tables, r.scenario(ctx, "S2", "fresh worker, no change: rebuild with the remote cache, push", base, r.Peers, "app", func(p Peer, rep int) (string, Job) {
			return app(0), Job{Base: base, Repo: seed(p, "app"), Tag: "latest", Cache: cache}
		}))
	}
	if r.wants("S2m") {
		tables = append(tables, r.scenario(ctx, "S2m", "fresh worker, no change, multi-stage build", base, r.Peers, "multistage", func(p Peer, rep int) (string, Job) {
			return multi, Job{Base: base, Repo: seed(p, "ms"), Tag: "latest", Cache: cache}
		}))
	}
	if r.wants("S3") {
		tables = append(tables, r.scenario(ctx, "S3", "fresh worker, one source file changed (copied late), cache from the previous run", base, r.Peers, "app", func(p Peer, rep int) (string, Job) {
			tag := fmt.Sprintf("s3-%d", rep)
			return app(rep), Job{Base: base, Repo: seed(p, "app"), Tag: tag, Cache: &Cache{From: "latest", To: tag}}
		}))
	}
	if r.wants("S4") {
		t, err := r.fanOut(ctx, base, contexts, repo)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	if r.wants("S5") && base.Name == "debian" {
		t, err := r.packages(ctx, base, contexts, repo)
		if err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// RunPlatforms runs S6 and S6n (issue 16) on base, a multi-platform base: every put builds each
// of its platforms (the foreign one's RUN steps under QEMU) and pushes one index; S6n is a fresh
// worker with no change, its cache the last S6 put. blobMB is the size S6's RUN writes.
func (r *Runner) RunPlatforms(ctx context.Context, base *Base, blobMB int) ([]Table, error) {
	dir := filepath.Join(r.Work, "contexts", base.Name, "platforms")
	if err := WritePlatforms(dir, base, blobMB); err != nil {
		return nil, err
	}
	repo := func(p Peer, what string) string {
		return fmt.Sprintf("%s/bench/%s/%s/%s", r.Registry.Host, base.Name, slug(p.Name()), what)
	}
	cache := &Cache{From: "latest", To: "latest"}
	cold := func(p Peer, rep int) (string, Job) {
		return dir, Job{Base: base, Repo: repo(p, fmt.Sprintf("cold-%d", rep)), Tag: "latest", Cache: cache, Platforms: base.Platforms}
	}
	platforms := strings.Join(base.Platforms, " + ")
	var tables []Table
	if r.wants("S6") {
		tables = append(tables, r.scenario(ctx, "S6", "cold, two platforms ("+platforms+") in one index", base, r.PlatformPeers, "platforms", cold))
	} else if r.wants("S6n") {
		for _, p := range r.PlatformPeers {
			contextDir, j := cold(p, r.Reps)
			if _, err := r.put(ctx, fmt.Sprintf("seed-S6-%s-%s", base.Name, slug(p.Name())), p, contextDir, j); err != nil {
				fmt.Fprintf(r.Progress, "  seed of S6n for %s failed: %v\n", p.Name(), firstLine(err.Error()))
			}
		}
	}
	if r.wants("S6n") {
		tables = append(tables, r.scenario(ctx, "S6n", "fresh worker, no change, two platforms ("+platforms+")", base, r.PlatformPeers, "platforms", func(p Peer, rep int) (string, Job) {
			return dir, Job{Base: base, Repo: repo(p, fmt.Sprintf("cold-%d", r.Reps)), Tag: "latest", Cache: cache, Platforms: base.Platforms}
		}))
	}
	return tables, nil
}

// seed runs, for each peer, the last cold put of scenario id, which the scenarios after it
// build on, when id itself is not run. Its figures are not reported.
func (r *Runner) seed(ctx context.Context, id string, base *Base, job func(Peer, int) (string, Job)) {
	for _, p := range r.Peers {
		if ctx.Err() != nil {
			return
		}
		contextDir, j := job(p, r.Reps)
		label := fmt.Sprintf("seed-%s-%s-%s", id, base.Name, slug(p.Name()))
		if _, err := r.put(ctx, label, p, contextDir, j); err != nil {
			fmt.Fprintf(r.Progress, "  %s: the previous run for %s's later scenarios failed: %v\n", label, p.Name(), firstLine(err.Error()))
		}
	}
}

// scenario runs Reps puts per peer, the peers taking turns.
func (r *Runner) scenario(ctx context.Context, id, title string, base *Base, peers []Peer, note string, job func(Peer, int) (string, Job)) Table {
	t := Table{ID: id, Title: title, Base: base.Name, Note: note, Rows: make([]Row, len(peers))}
	for rep := 1; rep <= r.Reps; rep++ {
		for i, p := range peers {
			if rep == 1 {
				t.Rows[i] = newRow(p)
			}
			if ctx.Err() != nil {
				return t
			}
			contextDir, j := job(p, rep)
			m, err := r.put(ctx, fmt.Sprintf("%s-%s-%s-%d", id, base.Name, slug(p.Name()), rep), p, contextDir, j)
			if err != nil {
				t.Rows[i].Errors = append(t.Rows[i].Errors, fmt.Sprintf("put %d: %v", rep, err))
				continue
			}
			t.Rows[i].Puts = append(t.Rows[i].Puts, m)
		}
	}
	return t
}

// fanOut runs S4: FanOut small Dockerfiles on one base, each put a fresh worker.
func (r *Runner) fanOut(ctx context.Context, base *Base, contexts string, repo func(Peer, string) string) (Table, error) {
	svc := func(n int) string { return filepath.Join(contexts, fmt.Sprintf("svc-%d", n)) }
	for n := 1; n <= r.FanOut; n++ {
		if err := WriteService(svc(n), base, n); err != nil {
			return Table{}, err
		}
	}
	t := Table{ID: "S4", Title: fmt.Sprintf("fan-out: %d small Dockerfiles on one base, each put a fresh worker", r.FanOut),
		Base: base.Name, Note: "figures per put", Rows: make([]Row, len(r.FanPeers))}
	for i, p := range r.FanPeers {
		t.Rows[i] = newRow(p)
		for n := 1; n <= r.FanOut && ctx.Err() == nil; n++ {
			j := Job{Base: base, Repo: repo(p, fmt.Sprintf("svc-%d", n)), Tag: "latest"}
			m, err := r.put(ctx, fmt.Sprintf("S4-%s-%s-%d", base.Name, slug(p.Name()), n), p, svc(n), j)
			if err != nil {
				t.Rows[i].Errors = append(t.Rows[i].Errors, fmt.Sprintf("put %d: %v", n, err))
				continue
			}
			t.Rows[i].Puts = append(t.Rows[i].Puts, m)
		}
	}
	return t, nil
}

// packages runs S5 (issue 7): a Dockerfile whose apt-get RUN keeps apt's lists and downloaded
// packages in cache mounts, invalidated on every put by a COPY before it. Each peer first puts
// once, unmeasured (the previous pipeline run, which fills ours's saved cache mounts), then Reps
// times, each put a fresh worker with a changed file.
func (r *Runner) packages(ctx context.Context, base *Base, contexts string, repo func(Peer, string) string) (Table, error) {
	pkg := func(change int) string { return filepath.Join(contexts, fmt.Sprintf("pkg-%d", change)) }
	for change := 0; change <= r.Reps; change++ {
		if err := WritePackages(pkg(change), base, change, r.Packages); err != nil {
			return Table{}, err
		}
	}
	t := Table{ID: "S5", Title: "fresh worker, apt-get install behind an invalidated layer, apt's caches in cache mounts",
		Base: base.Name, Note: "packages (" + r.Packages + ")", Rows: make([]Row, len(r.PkgPeers)), Mirror: true}
	if len(r.PkgPeers) > 0 {
		t.Ours = r.PkgPeers[0].Name()
	}
	job := func(p Peer) Job {
		return Job{Base: base, Repo: repo(p, "pkg"), Tag: "latest", Cache: &Cache{From: "latest", To: "latest"},
			CacheRepo: repo(p, "pkg-cache"), BuildArgs: map[string]string{"http_proxy": r.Mirror.URL()}}
	}
	for i, p := range r.PkgPeers {
		t.Rows[i] = newRow(p)
		if _, err := r.put(ctx, fmt.Sprintf("S5-%s-%s-prime", base.Name, slug(p.Name())), p, pkg(0), job(p)); err != nil {
			t.Rows[i].Errors = append(t.Rows[i].Errors, fmt.Sprintf("priming put: %v", err))
		}
		for rep := 1; rep <= r.Reps && ctx.Err() == nil; rep++ {
			m, err := r.put(ctx, fmt.Sprintf("S5-%s-%s-%d", base.Name, slug(p.Name()), rep), p, pkg(rep), job(p))
			if err != nil {
				t.Rows[i].Errors = append(t.Rows[i].Errors, fmt.Sprintf("put %d: %v", rep, err))
				continue
			}
			t.Rows[i].Puts = append(t.Rows[i].Puts, m)
		}
	}
	return t, nil
}

// put runs one put on a fresh worker and measures it. Preparing the worker (a fresh copy of the
// context, the base's get linked in) is not timed; removing it afterwards is not either.
func (r *Runner) put(ctx context.Context, label string, p Peer, contextDir string, job Job) (Measurement, error) {
	r.steps++
	s, err := NewStep(filepath.Join(r.Work, fmt.Sprintf("step-%03d", r.steps)), r.Cgroup)
	if err != nil {
		return Measurement{}, err
	}
	if err := copyTree(contextDir, filepath.Join(s.Dir, "ctx"), false); err != nil {
		s.Close()
		return Measurement{}, fmt.Errorf("copying the context: %w", err)
	}
	if err := copyTree(job.Base.GetDir, filepath.Join(s.Dir, "base"), true); err != nil {
		s.Close()
		return Measurement{}, fmt.Errorf("linking the base's get: %w", err)
	}
	r.Registry.Reset()
	r.Mirror.Reset()
	s.Begin()
	putErr := p.Put(ctx, s, job)
	m := Measurement{Wall: s.Elapsed(), Traffic: r.Registry.Reset(), Mirror: r.Mirror.Reset()}
	closeErr := s.Close()
	m.PeakMB = s.PeakMB()
	m.Runs = strings.Count(s.Log(), RunMarker)
	m.Timings = TimingLines(s.Log())
	m.Inner = s.Inner()

	logFile := filepath.Join(r.LogDir, label+".log")
	text := fmt.Sprintf("%s\n--- peak memory %.0f MB (sampled: %s; highest max RSS of a waited process %.0f MB)\n--- daemons\n%s",
		s.Log(), m.PeakMB, s.PeakProcesses(), s.MaxRSSMB(), s.DaemonLog())
	if err := os.WriteFile(logFile, []byte(text), 0o644); err != nil {
		return m, fmt.Errorf("keeping the step's log: %w", err)
	}
	status := "ok"
	if putErr != nil {
		putErr = fmt.Errorf("%s (log %s)", lastErrorLine(s.Log(), putErr), logFile)
		status = "FAILED: " + putErr.Error()
	}
	fmt.Fprintf(r.Progress, "%-40s %6.1f s %6.0f MB  down %8s  up %8s  mirror %8s  RUN %d  %s (log %s)\n", label, m.Wall.Seconds(), m.PeakMB,
		FormatBytes(m.Traffic.Down), FormatBytes(m.Traffic.Up), FormatBytes(m.Mirror), m.Runs, status, logFile)
	if putErr != nil {
		return m, putErr
	}
	if closeErr != nil {
		fmt.Fprintf(r.Progress, "  cleaning up: %v\n", closeErr)
	}
	return m, nil
}

// timingLine matches a line of out's log that says how long something took: "loaded base ...
// in 1.2s", "STEP 3/8: ... (0.4s)", "built in 2.0s", "pushed ... in 0.3s", and captures the time.
var timingLine = regexp.MustCompile(`\bin ([0-9]+\.[0-9]s)\b|\(([0-9]+\.[0-9]s)\)$`)

// stepLine is the start of a timed step line: "STEP 3/8: COPY".
var stepLine = regexp.MustCompile(`^(STEP [0-9]+/[0-9]+: [A-Z]+)`)

// TimingLines say, in short, where a put's time went, from out's own log: where the storage went,
// and each timed phase (loading the base, preparing the cache, each step that took 0.1 s or more,
// the build, the push).
func TimingLines(log string) []string {
	var lines []string
	for line := range strings.Lines(log) {
		line = strings.TrimSpace(line)
		if where, ok := strings.CutPrefix(line, "storage: "); ok {
			where, _, _ = strings.Cut(where, " (")
			lines = append(lines, "storage: "+where)
			continue
		}
		if short := shortTiming(line); short != "" {
			lines = append(lines, short)
		}
	}
	return lines
}

// shortTiming is a timed line of out's log in a few words ("STEP 5/8: COPY 0.4s", "pushed in
// 0.1s"), or "" for a line that is not timed or a step shorter than 0.1 s.
func shortTiming(line string) string {
	if strings.HasPrefix(line, "$ ") || strings.HasPrefix(line, "bench: ") {
		return ""
	}
	m := timingLine.FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	took := m[1] + m[2]
	if step := stepLine.FindString(line); step != "" {
		if took == "0.0s" {
			return ""
		}
		return step + " " + took
	}
	for _, label := range []string{"loaded base", "cache: prepared", "built", "pushed", "cache mount"} {
		if strings.HasPrefix(line, label) {
			return strings.Replace(label, ":", "", 1) + " in " + took
		}
	}
	words := strings.Fields(line)
	return strings.Join(words[:min(3, len(words))], " ") + " … in " + took
}

// MedianPut is the put whose wall time is closest to the median's.
func MedianPut(puts []Measurement) Measurement {
	if len(puts) == 0 {
		return Measurement{}
	}
	wall := Median(puts).Wall
	best := puts[0]
	for _, p := range puts[1:] {
		if (p.Wall - wall).Abs() < (best.Wall - wall).Abs() {
			best = p
		}
	}
	return best
}

// Median of the puts' figures; each figure's median is taken on its own.
func Median(puts []Measurement) Measurement {
	var m Measurement
	m.Wall = time.Duration(median(puts, func(p Measurement) float64 { return float64(p.Wall) }))
	m.PeakMB = median(puts, func(p Measurement) float64 { return p.PeakMB })
	m.Traffic.Down = int64(median(puts, func(p Measurement) float64 { return float64(p.Traffic.Down) }))
	m.Traffic.Up = int64(median(puts, func(p Measurement) float64 { return float64(p.Traffic.Up) }))
	m.Traffic.BlobGets = int(median(puts, func(p Measurement) float64 { return float64(p.Traffic.BlobGets) }))
	m.Traffic.Uploads = int(median(puts, func(p Measurement) float64 { return float64(p.Traffic.Uploads) }))
	m.Traffic.Requests = int(median(puts, func(p Measurement) float64 { return float64(p.Traffic.Requests) }))
	m.Mirror = int64(median(puts, func(p Measurement) float64 { return float64(p.Mirror) }))
	m.Runs = int(median(puts, func(p Measurement) float64 { return float64(p.Runs) }))
	m.Inner = time.Duration(median(puts, func(p Measurement) float64 { return float64(p.Inner) }))
	return m
}

// median is the middle value (the mean of the two middle ones for an even count).
func median(puts []Measurement, f func(Measurement) float64) float64 {
	if len(puts) == 0 {
		return 0
	}
	v := make([]float64, len(puts))
	for i, p := range puts {
		v[i] = f(p)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// slug makes a peer's name usable in a repository path.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// lastErrorLine is the last line of a failed put's log that mentions an error (the tool's own
// message), or the first line of err.
func lastErrorLine(log string, err error) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(strings.ToLower(lines[i]), "error") {
			return strings.TrimSpace(lines[i])
		}
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
