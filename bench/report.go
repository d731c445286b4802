package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// Report is everything docs/benchmarks.md says.
type Report struct {
	Date      time.Time
	Mode      string // "full" or "smoke"
	Duration  time.Duration
	Reps, Fan int
	BlobMB    int    // MB the app's RUN writes
	LoadStart string // /proc/loadavg when the run started
	Machine   [][2]string
	Versions  [][2]string
	Bases     []*Base
	Skipped   [][2]string // peer, why it did not run
	Tables    []Table
	Ours      string // name of the row the ratios are relative to
	Command   string // how the report was written, e.g. "bash bench/run -only S1,S2,S3 -reps 3"
	Commit    string // the commit of the resource measured
	Only      []string
	Container Container // the host of ours in a container; zero when it did not run
}

// Container is what the report says about the Docker daemon that ran ours in a container.
type Container struct {
	Info      string          // daemon version, root storage driver, cgroups
	Built     time.Duration   // building the resource image
	StartRuns []time.Duration // `docker run ... true`
	Start     time.Duration   // their median
}

// Write renders the report as Markdown.
func (rep *Report) Write(w io.Writer) error {
	var b strings.Builder
	command := rep.Command
	if command == "" {
		command = "bash bench/run" + map[bool]string{true: " --smoke"}[rep.Mode == "smoke"]
	}
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `%s` (see bench/README.md) on %s, in %s, at commit %s. Regenerate it rather than editing it.\n",
		command, rep.Date.UTC().Format("2006-01-02 15:04 MST"), rep.Duration.Round(time.Second), orUnknown(rep.Commit))
	if len(rep.Only) > 0 {
		fmt.Fprintf(&b, "Scenarios: %s only (a partial run; the full run has %s).\n", strings.Join(rep.Only, ", "), strings.Join(Scenarios, ", "))
	}
	b.WriteString(rep.loadSentence())
	fmt.Fprintf(&b, "Each figure is the median of %d puts (S4: of its %d puts), every put on a fresh worker. In each cell of another tool, `(×r)` is its figure divided by ours (%s): above 1, ours is lower (no ratio when ours is under 1 KB). **puts** counts the puts that succeeded; a failed put is listed under its table with the tool's error and left out of the medians.\n", rep.Reps, rep.Fan, rep.Ours)

	writeSummary(&b, rep)

	b.WriteString("\n## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range rep.Machine {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], kv[1])
	}
	b.WriteString("\n## Versions\n\n| tool | version |\n|---|---|\n")
	for _, kv := range rep.Versions {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], kv[1])
	}
	if len(rep.Skipped) > 0 {
		b.WriteString("\n## Tools that did not run\n\n")
		for _, kv := range rep.Skipped {
			fmt.Fprintf(&b, "- **%s**: %s\n", kv[0], kv[1])
		}
	}
	b.WriteString("\n## Corpus\n\n")
	for _, base := range rep.Bases {
		saved := "`format: oci, save: true`"
		if len(base.Platforms) > 0 {
			saved = "`format: oci-layout`: the whole index"
		}
		fmt.Fprintf(&b, "- base `%s`: %s; %s compressed, pushed to the local registry and saved by `in` (%s).\n",
			base.Name, base.Description, FormatBytes(base.LayerBytes), saved)
	}
	fmt.Fprintf(&b, corpusText, rep.BlobMB)
	b.WriteString("\n## How each figure is measured\n\n")
	b.WriteString(Methodology)

	for _, t := range rep.Tables {
		writeTable(&b, t, rep.Ours)
	}
	writeTargets(&b, rep)
	writeContainerTargets(&b, rep)
	_, err := io.WriteString(w, b.String())
	return err
}

const corpusText = `- app: ` + "`ARG BASE_IMAGE` / `FROM ${BASE_IMAGE}`" + `, ENV, LABEL, a RUN writing %d MB of random data and
  reading it 8 times (busybox: twice) through ` + "`tr`" + ` (CPU and disk, a few seconds), a COPY of 300 small source files
  (~1.5 KB each), a RUN over them, WORKDIR, CMD. S3 changes one of the source files.
- multistage: a builder stage (COPY of the sources, a RUN making a ~40 MB artifact) and a final
  stage on the same base (COPY --from=builder, a RUN).
- fan-out: small Dockerfiles on one base, each a LABEL, a COPY of one file and a RUN.
- packages (S5, Debian base only): a COPY of a file that every put changes, then
  ` + "`RUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt/lists,sharing=locked rm -f /etc/apt/apt.conf.d/docker-clean; apt-get $NOBIN update && apt-get $NOBIN install -y --no-install-recommends <packages>`" + `
  with ` + "`$NOBIN`" + ` = ` + "`" + aptNoBinCaches + "`" + ` (no pkgcache.bin/srcpkgcache.bin, rebuilt from the lists at every
  run: kept, they would be new content for the mount in every put; the README recommends this)
  from Debian's mirror (the base's sources.list: ` + "`deb http://deb.debian.org/debian bookworm main`" + `).
- platforms (S6, S6n, issue 16; the two-platform busybox base): a RUN writing a fifth of the app's
  random data and reading it once through ` + "`tr`" + `, a COPY of the 300 source files and a RUN over
  them, built for linux/amd64 and linux/arm64 (the foreign platform's RUN steps under QEMU user
  emulation, through the binfmt_misc handler ours registers when none is) and pushed as one index.
`

// Methodology explains the columns.
const Methodology = `- **wall s**: from the start of the put (daemon start included: dockerd and buildkitd are
  started fresh for every put, as a fresh Concourse worker would) until the push is done. Preparing
  the worker (a fresh copy of the context, with new mtimes as a fresh clone has; the base's get
  hard-linked in) is not timed, nor is removing it afterwards.
- **peak RSS MB**: every process a put starts (the tool, its children, the daemons it starts and
  their children such as containerd, shims and buildah's re-executed helpers) is cloned into a
  cgroup made for the put; every 100 ms the harness sums the PSS (` + "`/proc/PID/smaps_rollup`" + `) of all
  processes in that cgroup, and the figure is the highest sum. PSS is RSS with each shared page
  divided among the processes sharing it, so the sum does not count a binary mapped twice. RUN
  steps that a daemon moves into cgroups of its own (docker, BuildKit) are not counted; buildah's
  and ours are (small, except S5's apt-get: 90-100 MB). Processes living less than 100 ms can be missed by the sampler,
  so the figure is never below a floor: the highest max RSS of the commands the put ran (daemons
  excepted), each run under GNU time (` + "`ru_maxrss`" + ` of ` + "`wait4`" + `: the command and the children it
  waited for). A put shorter than one sampling interval (S2's) shows that floor.
- **down / up**: HTTP body bytes the registry sent to / received from the tool (manifests, configs,
  layers, cache manifests), counted by a reverse proxy in front of Debian's docker-registry on
  127.0.0.1; **blob GETs**: successful blob downloads; **uploads**: completed blob uploads (a
  cross-repository mount or a blob the registry already has is not one).
- **RUN steps**: every RUN of the corpus prints ` + "`benchrun=1`" + ` (written ` + "`benchrun=$((0+1))`" + ` in the
  Dockerfile, so an echoed instruction does not match); the harness counts it in the put's log.
  A RUN served from cache prints nothing.
- Peers, each as its Concourse integration uses it:
  - **ours**: ` + "`out`" + ` driven as Concourse drives it (request on stdin, work dir as argv[1]) with
    ` + "`load_base`" + ` from the get and, in S1-S3 and S5, ` + "`cache: true`" + ` (` + "`cache_tag: latest`" + `). The
    binaries are built from the working tree at each run.
    **ours (FROM pulled)** (S4 only) has no ` + "`load_base`" + ` and pulls the base from the registry.
  - **ours (in a container)**: the same put, as Concourse runs a resource: ` + "`docker run --rm -i`" + ` of the
    resource image per put (built as pkg/imagetest builds it: check, in and out compiled on the
    host with the root Dockerfile's static build line, on the busybox base, by
    dockerfiles/Dockerfile.prebuilt), its root on Docker's overlay2 (a Concourse container's root
    is overlayfs), the put's work directory bind-mounted at /tmp/build/put and given as argv[1],
    the request on stdin, ` + "`--network host`" + ` (the registry is on 127.0.0.1), every capability but
    CAP_SYS_RESOURCE, no seccomp or AppArmor profile (` + "`--privileged`" + ` fails on the bench machine).
    The Docker daemon is the harness's own, started once per run (not counted). **wall s** runs
    from ` + "`docker run`" + ` to its exit: container start and removal are in it (the Summary gives
    ` + "`docker run ... true`" + ` alone). **peak RSS MB** is the PSS of the container's processes (out
    and its RUN steps, sampled in the container's cgroup, made under the step's name with
    ` + "`--cgroup-parent`" + `); the docker CLI, dockerd and containerd's shim are the worker's and are
    not counted; the floor is out's max RSS (with its RUN steps'), from the image's busybox
    ` + "`time`" + `, which out runs under and which also gives out's own elapsed time in the container
    (the Summary's **of which out itself**) (Debian's busybox 1.35 writes 4 times ru_maxrss, taking
    kB for pages: the harness measures that factor on the host's busybox, which the image holds,
    against GNU time, and divides by it). The ` + "`(×r)`" + ` of this row is in-container ÷ host.
  - **docker-image-resource flow**: a fresh dockerd per put (empty --data-root), ` + "`docker load`" + ` of the
    get's docker archive and ` + "`docker tag`" + ` as its load_base does, ` + "`docker pull`" + ` of the cache image
    and ` + "`docker build --cache-from`" + ` (BuildKit mode, built with ` + "`BUILDKIT_INLINE_CACHE=1`" + `, without
    which a pulled image gives no cache), ` + "`docker push`" + `.
  - **buildah CLI**: fresh --root/--runroot per put and a private blob-info cache (the default,
    /var/lib/containers/cache, is host-wide and would leak between fresh workers and hide uploads:
    a bind mount in a private mount namespace hides it), ` + "`buildah pull oci-archive:`" + ` of the get,
    ` + "`buildah build --layers --isolation chroot --cache-from/--cache-to <repo>-buildah-cache`" + `, ` + "`buildah push`" + `.
  - **BuildKit**: buildkitd (OCI worker, Debian's runc, overlayfs snapshotter) with a fresh --root
    per put; the base served from the get by a read-only local registry passed as a build arg, as
    oci-build-task serves IMAGE_ARG_* images; ` + "`buildctl build`" + ` with registry cache import/export
    (mode=max, ` + "`<repo>-buildcache:<tag>`" + `) and ` + "`--output type=image,push=true`" + ` (pushing directly, which
    saves the separate registry-image put an oci-build-task pipeline has). The cache has a
    repository of its own: BuildKit exports it while it pushes the image, and with both in one
    repository docker-registry 2.8 sometimes refused the image's manifest (it truncates a layer's
    link file before rewriting it, and the manifest check can read it empty: DIGEST_INVALID).
- S1 puts of a peer go to a new repository each (the registry has none of the image); the last
  one is the previous pipeline run whose image and cache S2 and S3 use. S2 pushes the same tag
  again; S3 pushes a new tag.
- S6 (issue 16): **ours** has ` + "`platforms: [linux/amd64, linux/arm64]`" + ` (its platforms are built one
  after the other), ` + "`load_base`" + ` of the get of the whole index and ` + "`cache: true`" + `; BuildKit has
  ` + "`--opt platform=linux/amd64,linux/arm64`" + ` (its platforms built together) and the index served as
  its base. S6 puts of a peer go to a new repository each; S6n is a fresh worker with no change,
  its cache the last S6 put.
- S5 (issue 7, Debian base only): each tool first puts once unmeasured (the previous pipeline
  run), then every measured put changes the file the COPY reads, so the apt-get RUN after it
  runs again, on a fresh worker. **ours (cache mounts)** has ` + "`cache_mounts: true`" + ` and
  ` + "`cache_repo`" + `: its RUN starts with apt's lists and packages as the previous put left them
  (restored from the registry: counted in **down**) and saves them back when they changed.
  **ours** has the same params without ` + "`cache_mounts`" + `; both have ` + "`cache: true`" + `. BuildKit's
  cache mounts stay in its (fresh) --root, so it starts empty. **mirror down**: HTTP body bytes
  that RUN steps received from Debian's mirror, through a forward proxy in the harness on
  127.0.0.1 given to every tool as the ` + "`http_proxy`" + ` build arg (a predefined arg: no ` + "`ARG`" + ` line;
  apt-get honours it).
`

func writeTable(b *strings.Builder, t Table, ours string) {
	if t.Ours != "" {
		ours = t.Ours
	}
	fmt.Fprintf(b, "\n## %s on %s: %s\n\n", t.ID, t.Base, t.Title)
	fmt.Fprintf(b, "Dockerfile: %s.", t.Note)
	if t.Ours != "" {
		fmt.Fprintf(b, " Ratios are to %s.", ours)
	}
	b.WriteString("\n\n| tool | wall s | peak RSS MB | down | up | blob GETs | uploads |")
	align := "|---|---:|---:|---:|---:|---:|---:|"
	if t.Mirror {
		b.WriteString(" mirror down |")
		align += "---:|"
	}
	b.WriteString(" RUN steps | puts |\n" + align + "---:|---:|\n")
	var base *Measurement
	for _, r := range t.Rows {
		if r.Peer == ours && len(r.Puts) > 0 {
			m := Median(r.Puts)
			base = &m
		}
	}
	var failures []string
	for _, r := range t.Rows {
		for _, e := range r.Errors {
			failures = append(failures, fmt.Sprintf("- %s, %s", r.Peer, strings.ReplaceAll(firstLine(e), "|", "\\|")))
		}
		if len(r.Puts) == 0 {
			// Empty cells from peak RSS to RUN steps.
			fmt.Fprintf(b, "| %s | failed |%s 0 of %d |\n", r.Peer, strings.Repeat(" |", 6+boolInt(t.Mirror)), len(r.Errors))
			continue
		}
		writeRow(b, r, base, r.Peer == ours || base == nil, t.Mirror)
	}
	if len(failures) > 0 {
		b.WriteString("\n" + strings.Join(failures, "\n") + "\n")
	}
}

// writeRow writes a peer's medians, with their ratios to ref unless the row is ours.
func writeRow(b *strings.Builder, r Row, ref *Measurement, isOurs, mirror bool) {
	m := Median(r.Puts)
	cell := func(v, refV, min float64, text string) string {
		if isOurs {
			return text
		}
		return text + ratio(v, refV, min)
	}
	if ref == nil {
		ref = &Measurement{}
	}
	puts := fmt.Sprint(len(r.Puts))
	if len(r.Errors) > 0 {
		puts = fmt.Sprintf("%d of %d", len(r.Puts), len(r.Puts)+len(r.Errors))
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %d | %d |", r.Peer,
		cell(m.Wall.Seconds(), ref.Wall.Seconds(), 0.01, fmt.Sprintf("%.1f", m.Wall.Seconds())),
		cell(m.PeakMB, ref.PeakMB, 1, fmt.Sprintf("%.0f", m.PeakMB)),
		cell(float64(m.Traffic.Down), float64(ref.Traffic.Down), 1000, FormatBytes(m.Traffic.Down)),
		cell(float64(m.Traffic.Up), float64(ref.Traffic.Up), 1000, FormatBytes(m.Traffic.Up)),
		m.Traffic.BlobGets, m.Traffic.Uploads)
	if mirror {
		fmt.Fprintf(b, " %s |", cell(float64(m.Mirror), float64(ref.Mirror), 1000, FormatBytes(m.Mirror)))
	}
	fmt.Fprintf(b, " %d | %s |\n", m.Runs, puts)
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// ratio is " (×v/ref)", or "" when ref is too small for a ratio to mean anything.
func ratio(v, ref, min float64) string {
	switch r := v / ref; {
	case ref < min:
		return ""
	case r >= 10:
		return fmt.Sprintf(" (×%.0f)", r)
	case r > 0 && r < 0.1:
		return fmt.Sprintf(" (×1/%.0f)", 1/r)
	default:
		return fmt.Sprintf(" (×%.2g)", r)
	}
}

// writeTargets compares ours with the targets of issue 6, on the first base with results.
func writeTargets(b *strings.Builder, rep *Report) {
	find := func(id, peer string) (Measurement, bool) {
		for _, t := range rep.Tables {
			if t.ID != id || t.Base != rep.Tables[0].Base {
				continue
			}
			for _, r := range t.Rows {
				if r.Peer == peer && len(r.Puts) > 0 {
					return Median(r.Puts), true
				}
			}
		}
		return Measurement{}, false
	}
	fastestPeer := func(id string) (string, float64) {
		name, best := "", 0.0
		for _, t := range rep.Tables {
			if t.ID != id || t.Base != rep.Tables[0].Base {
				continue
			}
			for _, r := range t.Rows {
				if r.Peer == rep.Ours || r.Of != "" || len(r.Puts) == 0 {
					continue
				}
				if w := Median(r.Puts).Wall.Seconds(); name == "" || w < best {
					name, best = r.Peer, w
				}
			}
		}
		return name, best
	}
	if len(rep.Tables) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Targets for ours (issues 6 and 7, on %s; reported, not asserted)\n\n| target | figure | met |\n|---|---|---|\n", rep.Tables[0].Base)
	line := func(target, figure string, met bool) {
		fmt.Fprintf(b, "| %s | %s | %s |\n", target, figure, map[bool]string{true: "yes", false: "**no**"}[met])
	}
	const bk = "BuildKit (buildctl)"
	if o, ok := find("S1", rep.Ours); ok {
		if name, best := fastestPeer("S1"); name != "" {
			line("S1 no slower than the fastest peer", fmt.Sprintf("%.1f s vs %s %.1f s", o.Wall.Seconds(), name, best), o.Wall.Seconds() <= best)
		}
	}
	if o, ok := find("S2", rep.Ours); ok {
		line("S2: 0 RUN steps", fmt.Sprintf("%d", o.Runs), o.Runs == 0)
		line("S2: under 10 KB downloaded", FormatBytes(o.Traffic.Down), o.Traffic.Down < 10_000)
		if k, ok := find("S2", bk); ok {
			line("S2 faster than BuildKit", fmt.Sprintf("%.1f s vs %.1f s", o.Wall.Seconds(), k.Wall.Seconds()), o.Wall < k.Wall)
		}
	}
	if o, ok := find("S3", rep.Ours); ok {
		if k, ok := find("S3", bk); ok {
			line("S3 no slower than BuildKit", fmt.Sprintf("%.1f s vs %.1f s", o.Wall.Seconds(), k.Wall.Seconds()), o.Wall <= k.Wall)
		}
		line("S3: only changed layers pushed (RUN and COPY after the change)", FormatBytes(o.Traffic.Up)+" up", o.Traffic.Up < 1_000_000)
	}
	if o, ok := find("S4", rep.Ours); ok {
		var baseBytes int64
		for _, base := range rep.Bases {
			if base.Name == rep.Tables[0].Base {
				baseBytes = base.LayerBytes
			}
		}
		line("S4: no base bytes uploaded", fmt.Sprintf("%s up per put (base %s)", FormatBytes(o.Traffic.Up), FormatBytes(baseBytes)), o.Traffic.Up < baseBytes/2)
		line("S4: under 2 s per put", fmt.Sprintf("%.1f s", o.Wall.Seconds()), o.Wall < 2*time.Second)
	}
	if cm, ok := find("S5", "ours (cache mounts)"); ok {
		if o, ok := find("S5", rep.Ours); ok {
			line("S5 (issue 7): cache mounts cut the mirror downloads (under a tenth)",
				fmt.Sprintf("%s vs %s without", FormatBytes(cm.Mirror), FormatBytes(o.Mirror)), cm.Mirror*10 < o.Mirror)
			line("S5 (issue 7): cache mounts make the put faster",
				fmt.Sprintf("%.1f s vs %.1f s without", cm.Wall.Seconds(), o.Wall.Seconds()), cm.Wall < o.Wall)
		}
	}
	// S5's RUN is apt-get, whose own ~100 MB is counted for ours (its RUN steps run in the
	// put's cgroup) and not for BuildKit: the target is about the resource, so S5 is left out;
	// S6 and S6n (issue 16) are not issue 6's.
	var peak float64
	for _, t := range rep.Tables {
		if t.ID == "S5" || strings.HasPrefix(t.ID, "S6") {
			continue
		}
		for _, r := range t.Rows {
			if r.Peer == rep.Ours && len(r.Puts) > 0 && Median(r.Puts).PeakMB > peak {
				peak = Median(r.Puts).PeakMB
			}
		}
	}
	if peak > 0 {
		line("peak RSS under 150 MB (highest median of S1-S4)", fmt.Sprintf("%.0f MB", peak), peak < 150)
	}
}

// orUnknown is s, or "unknown" when empty.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// loadSentence says whether other work shared the machine: a 1-minute load average, at the start
// or the end, of half the CPUs or more.
func (rep *Report) loadSentence() string {
	end := "?"
	for _, kv := range rep.Machine {
		if strings.HasPrefix(kv[0], "load average") {
			_, end, _ = strings.Cut(kv[1], " → ")
		}
	}
	busy := false
	for _, load := range []string{rep.LoadStart, end} {
		var one float64
		if _, err := fmt.Sscan(load, &one); err == nil && one >= float64(runtime.NumCPU())/2 {
			busy = true
		}
	}
	if !busy {
		return fmt.Sprintf("Load average (1, 5, 15 min) %s at the start, %s at the end (%d CPUs).\n", rep.LoadStart, end, runtime.NumCPU())
	}
	sentence := fmt.Sprintf("**The machine was busy with other work during the run** (load average %s at the start, %s at the end, on %d CPUs): "+
		"every figure is slower, and noisier, than on an idle machine", rep.LoadStart, end, runtime.NumCPU())
	if len(rep.Container.StartRuns) > 0 {
		sentence += "; ours on the host and in a container ran in turns, under the same load"
	}
	return sentence + ".\n"
}

// pair is a scenario's ours on the host and in a container.
type pair struct {
	Table           Table
	Host, Container *Row
}

// pairs finds, in each table, the host row of ours (the table's ours) and its in-container row.
func (rep *Report) pairs() []pair {
	var out []pair
	for _, t := range rep.Tables {
		ours := rep.Ours
		if t.Ours != "" {
			ours = t.Ours
		}
		p := pair{Table: t}
		for i := range t.Rows {
			switch r := &t.Rows[i]; {
			case r.Peer == ours:
				p.Host = r
			case r.Of == ours && p.Container == nil: // not the unprivileged one, which follows it
				p.Container = r
			}
		}
		if p.Host != nil {
			out = append(out, p)
		}
	}
	return out
}

// cellOf is a row's median wall time and peak memory, or why there is none.
func cellOf(r *Row) string {
	switch {
	case r == nil:
		return "not run"
	case len(r.Puts) == 0:
		return "failed"
	}
	m := Median(r.Puts)
	return fmt.Sprintf("%.1f s, %.0f MB", m.Wall.Seconds(), m.PeakMB)
}

// wallRatio is a's median wall time divided by b's, or 0 when either has no put.
func wallRatio(a, b *Row) float64 {
	if a == nil || b == nil || len(a.Puts) == 0 || len(b.Puts) == 0 || Median(b.Puts).Wall <= 0 {
		return 0
	}
	return Median(a.Puts).Wall.Seconds() / Median(b.Puts).Wall.Seconds()
}

// fastestOther is the fastest row of t that is not ours (on the host or in a container).
func fastestOther(t Table, p pair) string {
	name, best := "", 0.0
	for _, r := range t.Rows {
		if r.Peer == p.Host.Peer || r.Of != "" || len(r.Puts) == 0 || strings.HasPrefix(r.Peer, "ours") {
			continue
		}
		if w := Median(r.Puts).Wall.Seconds(); name == "" || w < best {
			name, best = r.Peer, w
		}
	}
	if name == "" {
		return "none ran"
	}
	return fmt.Sprintf("%s: %.1f s", name, best)
}

// writeSummary is the headline: per scenario, ours in a container (as Concourse runs it), next
// to the same put on the host and the fastest other tool.
func writeSummary(b *strings.Builder, rep *Report) {
	b.WriteString("\n## Summary: ours in a container (the headline)\n\n")
	c := rep.Container
	if len(c.StartRuns) == 0 {
		b.WriteString("Ours in a container did not run (see Tools that did not run): the figures below are ours on the host.\n\n")
	} else {
		var runs []string
		for _, d := range c.StartRuns {
			runs = append(runs, fmt.Sprintf("%.2f", d.Seconds()))
		}
		fmt.Fprintf(b, "Ours runs as Concourse runs it: `out` in the resource image, started by `docker run` for every put (%s). "+
			"Starting and removing an empty container alone (`docker run -i` of `true`, same flags, mount and stdin) takes %.2f s (median of %s s): that is in every in-container figure. "+
			"**of which out itself** is out's own elapsed time inside the container (busybox `time`, which out runs under).\n\n",
			c.Info, c.Start.Seconds(), strings.Join(runs, ", "))
	}
	b.WriteString("| scenario | base | ours in a container: wall, peak RSS | of which out itself | ours on the host | in a container ÷ host | fastest other tool (on the host) |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, p := range rep.pairs() {
		ratio, inner := "–", "–"
		if r := wallRatio(p.Container, p.Host); r > 0 {
			ratio = fmt.Sprintf("×%.2f", r)
		}
		if p.Container != nil && len(p.Container.Puts) > 0 && Median(p.Container.Puts).Inner > 0 {
			inner = fmt.Sprintf("%.1f s", Median(p.Container.Puts).Inner.Seconds())
		}
		fmt.Fprintf(b, "| %s | %s | **%s** | %s | %s | %s | %s |\n", p.Table.ID, p.Table.Base, cellOf(p.Container), inner, cellOf(p.Host), ratio, fastestOther(p.Table, p))
	}
}

// ContainerRatio and ContainerS2 are issue 15's targets: a put in a container within 1.25× of the
// same put on the host, and S2 (no change) in a container under 0.3 s.
const (
	ContainerRatio = 1.25
	ContainerS2    = 300 * time.Millisecond
)

// writeContainerTargets compares ours in a container with ours on the host (issue 15), on the
// first base, and says where the time went in each scenario that misses a target.
func writeContainerTargets(b *strings.Builder, rep *Report) {
	if len(rep.Tables) == 0 || len(rep.Container.StartRuns) == 0 {
		return
	}
	base := rep.Tables[0].Base
	fmt.Fprintf(b, "\n## Targets for ours in a container (issue 15, on %s; reported, not asserted)\n\n| target | figure | met |\n|---|---|---|\n", base)
	var missed []pair
	for _, p := range rep.pairs() {
		if p.Table.Base != base || p.Container == nil || len(p.Container.Puts) == 0 || len(p.Host.Puts) == 0 {
			continue
		}
		in, host := Median(p.Container.Puts).Wall, Median(p.Host.Puts).Wall
		r := wallRatio(p.Container, p.Host)
		met := r <= ContainerRatio
		fmt.Fprintf(b, "| %s: in a container within %.2f× of the host | %.1f s vs %.1f s (×%.2f) | %s |\n",
			p.Table.ID, ContainerRatio, in.Seconds(), host.Seconds(), r, yesNo(met))
		if p.Table.ID == "S2" {
			fast := in < ContainerS2
			fmt.Fprintf(b, "| S2: in a container under %.1f s | %.2f s | %s |\n", ContainerS2.Seconds(), in.Seconds(), yesNo(fast))
			met = met && fast
		}
		if !met {
			missed = append(missed, p)
		}
	}
	writeWhereTimeGoes(b, rep, missed)
}

// writeWhereTimeGoes lists, for each scenario that missed a target, the timing lines of its
// median put's own log, in a container and on the host.
func writeWhereTimeGoes(b *strings.Builder, rep *Report, missed []pair) {
	if len(missed) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### Where the time goes (the median put's own log)\n\n"+
		"Starting and removing an empty container costs %.2f s of each in-container put (Summary). "+
		"Out's own timed phases below (steps under 0.1 s left out); what they leave of out's own time is out starting, "+
		"reading the request and the base, and talking to the registry before the build.\n", rep.Container.Start.Seconds())
	for _, p := range missed {
		in, host := MedianPut(p.Container.Puts), MedianPut(p.Host.Puts)
		inner := ""
		if in.Inner > 0 {
			inner = fmt.Sprintf(" (out itself %.2f s, docker run the other %.2f s)", in.Inner.Seconds(), (in.Wall - in.Inner).Seconds())
		}
		fmt.Fprintf(b, "\n- **%s**: %.2f s in a container%s, %.2f s on the host; out's own timings:\n", p.Table.ID, in.Wall.Seconds(), inner, host.Wall.Seconds())
		for _, side := range []struct {
			name string
			m    Measurement
		}{{"in a container", in}, {"on the host", host}} {
			lines := side.m.Timings
			if len(lines) == 0 {
				lines = []string{"(no timed line)"}
			}
			fmt.Fprintf(b, "  - %s: %s\n", side.name, strings.Join(lines, "; "))
		}
	}
}

// yesNo is "yes", or a bold "no".
func yesNo(met bool) string { return map[bool]string{true: "yes", false: "**no**"}[met] }

// FormatBytes writes n in B, KB, or MB (powers of 1000).
func FormatBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
}
