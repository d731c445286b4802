// Package dockerfile is the one reading of a put's Dockerfile: Parse builds a Model from its bytes
// and the build's args, target and platform, once per build, and everything else the put decides
// about the Dockerfile reads that model: the images it names (load_base, offline, pulls), the
// stages built for another platform, its cache mounts, and the instructions the cache keys hash.
//
// It parses with imagebuilder, the parser and evaluator buildah itself builds with, and expands
// FROM lines, --platform flags and stage names with imagebuilder's builder set up as buildah sets
// it up (build args, heading ARGs, the platform ARGs), so the model and the build agree by
// construction. It also maps the images the model names onto loaded bases (MapBases), and holds
// the one parser of RUN --mount values (ParseMount).
package dockerfile

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/openshift/imagebuilder"
	"github.com/openshift/imagebuilder/dockerfile/command"
	"github.com/openshift/imagebuilder/dockerfile/parser"
)

// Args is what a build brings to its Dockerfile besides the text.
type Args struct {
	BuildArgs map[string]string
	Target    string // the stage to build; "" = the last
	// Platform is the platform built for, "os/arch[/variant]"; "" = the running one with no
	// choice made. It sets TARGETPLATFORM, TARGETOS, TARGETARCH and TARGETVARIANT as buildah does.
	Platform string
}

// Model is a Dockerfile as one build reads it.
type Model struct {
	// Stages are the stages building the target needs, in Dockerfile order; the last is the target.
	// Stages the target does not need (through FROM, COPY --from or RUN --mount from=) are left
	// out, as buildah skips them.
	Stages []Stage
	// Platform is TARGETPLATFORM: Args.Platform, or the running platform.
	Platform string

	node      *parser.Node // as parsed; never changed (Evaluate works on a copy)
	buildArgs map[string]string
	defaults  map[string]string // the platform ARGs buildah adds
}

// Stage is one FROM section.
type Stage struct {
	Name     string // the AS name, or the position as a string
	Position int    // in the Dockerfile, from 0
	From     Use    // what the FROM names
	Platform string // the FROM --platform flag, expanded; "" if none
	Steps    []Step // the instructions after the FROM, as written
}

// Step is one instruction of a stage.
type Step struct {
	Line     int
	Command  string // lower case: "run", "copy", ...
	Original string
	Reads    []Use   // what COPY --from= and RUN --mount from= name
	Mounts   []Mount // RUN --mount values
}

// Use is an image or an earlier stage a stage reads.
type Use struct {
	Value string // as expanded
	Line  int
	Stage int  // the position of the earlier stage it names; -1 for an image or scratch
	Image *Ref // the image it names; nil for a stage or scratch
}

// Ref is an external image the Dockerfile names: in a FROM (not a previous stage name) or a
// COPY --from=<image> / RUN --mount from=<image>.
type Ref struct {
	// Original is the image as the Dockerfile names it, after ARG expansion (e.g. "ubuntu:22.04"
	// for FROM ${BASE}).
	Original string
	// Line is the 1-based line of the instruction naming the image.
	Line int
	// Normalized is the fully qualified reference, e.g. docker.io/library/ubuntu:latest or
	// docker.io/library/ubuntu@sha256:...
	Normalized string
}

// Parse reads the Dockerfile for a build with args. Errors name the Dockerfile line.
func Parse(dockerfile []byte, args Args) (*Model, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("Dockerfile line %d: %w", errorLine(dockerfile, err), err)
	}
	m := &Model{node: res.AST, buildArgs: args.BuildArgs, defaults: platformDefaults(args.Platform)}
	m.Platform = m.defaults["TARGETPLATFORM"]
	if err := checkInstructions(res.AST); err != nil {
		return nil, err
	}
	stages, err := m.Evaluate()
	if err != nil {
		return nil, err
	}
	all := make([]Stage, len(stages))
	for i, st := range stages {
		if all[i], err = readStage(st, all[:i]); err != nil {
			return nil, err
		}
	}
	last := len(all) - 1
	if args.Target != "" {
		if last = StageIndex(all, args.Target, len(all)); last < 0 {
			return nil, fmt.Errorf("target stage %q not found in Dockerfile", args.Target)
		}
	}
	needed := neededStages(all, last)
	for i, st := range all[:last+1] {
		if needed[i] {
			m.Stages = append(m.Stages, st)
		}
	}
	return m, nil
}

// Evaluate returns imagebuilder's stages of the whole Dockerfile, with builders set up as buildah
// sets them up for this build, on a copy of the parsed text: each call starts afresh. The cache
// keys evaluate the steps with them.
func (m *Model) Evaluate() (imagebuilder.Stages, error) {
	b := imagebuilder.NewBuilder(m.buildArgs)
	delete(b.UserArgs, "TARGETPLATFORM") // buildah's TARGETPLATFORM is the platform built for
	delete(b.Args, "TARGETPLATFORM")
	for k, v := range m.defaults {
		b.BuiltinArgDefaults[k] = v
	}
	stages, err := imagebuilder.NewStages(cloneNode(m.node), b)
	if err != nil {
		return nil, fmt.Errorf("Dockerfile: %w", err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("Dockerfile has no FROM instruction")
	}
	return stages, nil
}

// Target is the stage built.
func (m *Model) Target() Stage { return m.Stages[len(m.Stages)-1] }

// Images are the external images the stages name, in Dockerfile order.
func (m *Model) Images() []Ref {
	var refs []Ref
	for _, st := range m.Stages {
		for _, u := range st.uses() {
			if u.Image != nil {
				refs = append(refs, *u.Image)
			}
		}
	}
	return refs
}

// FinalBase is the image the target is ultimately built FROM, following FROM <stage> chains; nil
// for scratch.
func (m *Model) FinalBase() *Ref {
	from := m.Target().From
	for from.Stage >= 0 {
		st, ok := m.stageAt(from.Stage)
		if !ok {
			return nil // not reached: a FROM names a stage the model needs
		}
		from = st.From
	}
	return from.Image
}

// CrossStageImages are, by platform, the images that FROM lines with a --platform flag other than
// the target platform read: a build for one platform needs those images of another (e.g.
// FROM --platform=$BUILDPLATFORM golang AS build).
func (m *Model) CrossStageImages() map[string][]Ref {
	out := map[string][]Ref{}
	for _, st := range m.Stages {
		if st.Platform != "" && st.Platform != m.Platform && st.From.Image != nil {
			out[st.Platform] = append(out[st.Platform], *st.From.Image)
		}
	}
	return out
}

// RunsOnTarget says a stage built for the target platform (no --platform flag, or one naming it)
// has a RUN instruction: only then must the machine run the target platform's programs.
func (m *Model) RunsOnTarget() bool {
	for _, st := range m.Stages {
		if st.Platform != "" && st.Platform != m.Platform {
			continue
		}
		for _, s := range st.Steps {
			if s.Command == command.Run {
				return true
			}
		}
	}
	return false
}

// CacheMounts are the RUN --mount=type=cache mounts of the stages, once per id and owner.
func (m *Model) CacheMounts() []Mount {
	var mounts []Mount
	seen := map[string]bool{}
	for _, st := range m.Stages {
		for _, s := range st.Steps {
			for _, mount := range s.Mounts {
				key := fmt.Sprintf("%s:%d:%d", mount.ID, mount.UID, mount.GID)
				if mount.Type == "cache" && !seen[key] {
					seen[key] = true
					mounts = append(mounts, mount)
				}
			}
		}
	}
	return mounts
}

// StageIndex is the position of the last stage before limit named name (its AS name, in any
// case, or its position), or -1: how a FROM or a --from finds an earlier stage.
func StageIndex(stages []Stage, name string, limit int) int {
	for i := min(limit, len(stages)) - 1; i >= 0; i-- {
		if strings.EqualFold(stages[i].Name, name) {
			return stages[i].Position
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n < limit {
		return n
	}
	return -1
}

// StageNamed finds, among the model's stages before position limit, the one name names (its AS
// name, in any case, or its position).
func (m *Model) StageNamed(name string, limit int) (Stage, bool) {
	for i := len(m.Stages) - 1; i >= 0; i-- {
		if st := m.Stages[i]; st.Position < limit && strings.EqualFold(st.Name, name) {
			return st, true
		}
	}
	if n, err := strconv.Atoi(name); err == nil && n < limit {
		return m.stageAt(n)
	}
	return Stage{}, false
}

// stageAt is the needed stage at position i.
func (m *Model) stageAt(i int) (Stage, bool) {
	for _, st := range m.Stages {
		if st.Position == i {
			return st, true
		}
	}
	return Stage{}, false
}

func (st Stage) uses() []Use {
	uses := []Use{st.From}
	for _, s := range st.Steps {
		uses = append(uses, s.Reads...)
	}
	return uses
}

// readStage reads one stage of imagebuilder's: its FROM through the stage's builder, as buildah
// does, and its steps' --from and --mount flags.
func readStage(st imagebuilder.Stage, earlier []Stage) (Stage, error) {
	out := Stage{Name: st.Name, Position: st.Position}
	fromNode := st.Node.Children[0]
	fromLine := fromNode.StartLine
	expand := fromExpander(st.Builder)
	for _, node := range st.Node.Children[1:] {
		step, err := readStep(node, expand, earlier)
		if err != nil {
			return out, err
		}
		out.Steps = append(out.Steps, step)
	}
	image, err := st.Builder.From(st.Node)
	if err != nil {
		return out, fmt.Errorf("Dockerfile line %d: %w", fromLine, err)
	}
	if image == "" {
		return out, fmt.Errorf("Dockerfile line %d: FROM %s expands to an empty image name", fromLine, fromNode.Next.Value)
	}
	out.Platform = st.Builder.Platform
	out.From, err = use(image, fromLine, earlier)
	return out, err
}

// readStep reads the flags of an instruction that name other images or stages.
func readStep(node *parser.Node, expand func(string) (string, error), earlier []Stage) (Step, error) {
	step := Step{Line: node.StartLine, Command: node.Value, Original: node.Original}
	for _, flag := range node.Flags {
		if v, ok := strings.CutPrefix(flag, "--from="); ok && node.Value != command.Run {
			v, err := expand(v)
			if err != nil {
				return step, fmt.Errorf("Dockerfile line %d: expanding %q: %w", node.StartLine, v, err)
			}
			if v == "" {
				continue // a stage-local ARG: known only when the step runs
			}
			u, err := use(v, node.StartLine, earlier)
			if err != nil {
				return step, err
			}
			step.Reads = append(step.Reads, u)
		}
		if spec, ok := strings.CutPrefix(flag, "--mount="); ok && node.Value == command.Run {
			mount, err := ParseMount(spec)
			if err != nil {
				return step, fmt.Errorf("Dockerfile line %d: %w", node.StartLine, err)
			}
			mount.Line = node.StartLine
			step.Mounts = append(step.Mounts, mount)
			if mount.From != "" {
				u, err := use(mount.From, node.StartLine, earlier)
				if err != nil {
					return step, err
				}
				step.Reads = append(step.Reads, u)
			}
		}
	}
	return step, nil
}

// fromExpander expands a --from value as buildah does when it works out which stages a stage
// needs: with the platform ARGs, the stage builder's args and the heading ARGs.
func fromExpander(b *imagebuilder.Builder) func(string) (string, error) {
	var env []string
	for _, m := range []map[string]string{b.BuiltinArgDefaults, b.Args, b.HeadingArgs} {
		for k, v := range m {
			env = append(env, k+"="+v)
		}
	}
	return func(word string) (string, error) { return imagebuilder.ProcessWord(word, env) }
}

// use resolves what a FROM or --from names: an earlier stage, scratch, or an image.
func use(value string, line int, earlier []Stage) (Use, error) {
	u := Use{Value: value, Line: line, Stage: StageIndex(earlier, value, len(earlier))}
	if u.Stage >= 0 || strings.EqualFold(value, "scratch") {
		return u, nil
	}
	normalized, err := Normalize(value)
	if err != nil {
		return u, fmt.Errorf("Dockerfile line %d: invalid image reference %q: %w", line, value, err)
	}
	u.Image = &Ref{Original: value, Line: line, Normalized: normalized}
	return u, nil
}

// neededStages marks the stages the stage last depends on (itself included). Uses only point at
// earlier stages, so one backwards pass suffices.
func neededStages(stages []Stage, last int) []bool {
	needed := make([]bool, len(stages))
	needed[last] = true
	for i := last; i >= 0; i-- {
		if !needed[i] {
			continue
		}
		for _, u := range stages[i].uses() {
			if u.Stage >= 0 {
				needed[u.Stage] = true
			}
		}
	}
	return needed
}

// checkInstructions refuses unknown instructions and instructions other than ARG before the first
// FROM, naming the line (buildah would fail on them only when it reaches them).
func checkInstructions(ast *parser.Node) error {
	seenFrom := false
	for _, node := range ast.Children {
		if _, ok := command.Commands[node.Value]; !ok {
			return fmt.Errorf("Dockerfile line %d: unknown instruction %q", node.StartLine, firstWord(node.Original))
		}
		if node.Value == command.From && (node.Next == nil || node.Next.Value == "") {
			return fmt.Errorf("Dockerfile line %d: FROM requires an image", node.StartLine)
		}
		seenFrom = seenFrom || node.Value == command.From
		if !seenFrom && node.Value != command.Arg {
			return fmt.Errorf("Dockerfile line %d: %s before the first FROM", node.StartLine, strings.ToUpper(node.Value))
		}
	}
	if !seenFrom {
		return fmt.Errorf("Dockerfile has no FROM instruction")
	}
	return nil
}

// errorLine finds the first line at which a prefix of the Dockerfile fails to parse with the same
// error (the parser itself reports no line numbers).
func errorLine(dockerfile []byte, want error) int {
	lines := bytes.SplitAfter(dockerfile, []byte("\n"))
	size := 0
	for i, l := range lines {
		size += len(l)
		if _, err := parser.Parse(bytes.NewReader(dockerfile[:size])); err != nil && err.Error() == want.Error() {
			return i + 1
		}
	}
	return len(lines)
}

// platformDefaults are the platform ARGs of a build for platform ("" = the running one), as
// buildah sets them: BUILD* say the running platform, TARGET* the one built for.
func platformDefaults(platform string) map[string]string {
	running := runtime.GOOS + "/" + runtime.GOARCH
	if platform == "" {
		platform = running
	}
	args := map[string]string{}
	for prefix, p := range map[string]string{"TARGET": platform, "BUILD": running} {
		parts := append(strings.SplitN(p, "/", 3), "", "")
		args[prefix+"PLATFORM"] = p
		args[prefix+"OS"], args[prefix+"ARCH"], args[prefix+"VARIANT"] = parts[0], parts[1], parts[2]
	}
	return args
}

// Normalize returns the fully qualified form of an image reference: registry/repository:tag or
// registry/repository@digest, with Docker Hub spelled docker.io (not index.docker.io) and the
// tag defaulting to latest.
func Normalize(image string) (string, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return "", err
	}
	repo := repository(ref.Context())
	if d, ok := ref.(name.Digest); ok {
		return repo + "@" + d.DigestStr(), nil
	}
	return repo + ":" + ref.Identifier(), nil
}

// repository spells a repository with docker.io for Docker Hub.
func repository(r name.Repository) string {
	registry := r.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io"
	}
	return registry + "/" + r.RepositoryStr()
}

// cloneNode copies a parsed Dockerfile: imagebuilder's evaluation rewrites the nodes it reads.
func cloneNode(n *parser.Node) *parser.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Next = cloneNode(n.Next)
	c.Children = make([]*parser.Node, len(n.Children))
	for i, child := range n.Children {
		c.Children[i] = cloneNode(child)
	}
	return &c
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return s
}
