// Package dockerfile finds the external images a Dockerfile names and maps
// them onto base images that are already loaded, and the images stages built
// for another platform (FROM --platform=...) read.
//
// It is pure logic: it parses the Dockerfile with imagebuilder's parser (the
// one buildah uses), expands ARGs the way buildah does for FROM lines, follows
// stage names so that only real images are reported, and normalizes image
// references with go-containerregistry (ubuntu = docker.io/library/ubuntu:latest).
package dockerfile

import (
	"bytes"
	"fmt"
	"maps"
	"runtime"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	buildkitshell "github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/openshift/imagebuilder/dockerfile/parser"
)

// Ref is an external image the Dockerfile names: in a FROM (not a previous
// stage name) or a COPY --from=<image> / RUN --mount=from=<image>.
type Ref struct {
	// Original is the image as the Dockerfile names it, after ARG expansion
	// (e.g. "ubuntu:22.04" for FROM ${BASE}).
	Original string
	// Line is the 1-based line of the instruction naming the image.
	Line int
	// Normalized is the fully qualified reference, e.g.
	// docker.io/library/ubuntu:latest or docker.io/library/ubuntu@sha256:...
	Normalized string
}

// ExternalImages returns the external images named by the stages needed to
// build target ("" = the last stage), in Dockerfile order. Stages the target
// does not need (through FROM, COPY --from or RUN --mount from=) are skipped,
// as buildah skips them. FROM and --from values are expanded as buildah does:
// with the ARGs declared before the first FROM, their defaults overridden by
// buildArgs (a --from using a stage-local ARG expands to "" and is ignored).
// Errors name the Dockerfile line.
func ExternalImages(dockerfile []byte, buildArgs map[string]string, target string) ([]Ref, error) {
	stages, err := targetStages(dockerfile, buildArgs, nil, target)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, st := range stages {
		for _, u := range st.uses {
			if u.stage >= 0 || isScratch(u.value) {
				continue
			}
			normalized, err := Normalize(u.value)
			if err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: invalid image reference %q: %w", u.line, u.value, err)
			}
			refs = append(refs, Ref{Original: u.value, Line: u.line, Normalized: normalized})
		}
	}
	return refs, nil
}

// FinalBase returns the external image the target stage ("" = last stage) is
// ultimately built FROM, following FROM <stage> chains; nil for scratch.
func FinalBase(dockerfile []byte, buildArgs map[string]string, target string) (*Ref, error) {
	stages, err := parseStages(dockerfile, buildArgs)
	if err != nil {
		return nil, err
	}
	i, err := targetStage(stages, target)
	if err != nil {
		return nil, err
	}
	from := stages[i].uses[0]
	for from.stage >= 0 {
		from = stages[from.stage].uses[0]
	}
	if isScratch(from.value) {
		return nil, nil
	}
	normalized, err := Normalize(from.value)
	if err != nil {
		return nil, fmt.Errorf("Dockerfile line %d: invalid image reference %q: %w", from.line, from.value, err)
	}
	return &Ref{Original: from.value, Line: from.line, Normalized: normalized}, nil
}

// Normalize returns the fully qualified form of an image reference:
// registry/repository:tag or registry/repository@digest, with Docker Hub
// spelled docker.io (not index.docker.io) and the tag defaulting to latest.
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

// stage is one FROM ... section of a Dockerfile.
type stage struct {
	name     string // lower-cased AS name, "" if none
	uses     []use  // uses[0] is the FROM; then COPY --from / RUN --mount from=
	platform string // FROM --platform=, expanded; "" if none
	runs     bool   // has a RUN instruction
}

// use is an image or stage a stage reads from.
type use struct {
	value string // after ARG expansion
	line  int
	stage int // index of the earlier stage it names, -1 for an image
}

var instructions = map[string]bool{
	"add": true, "arg": true, "cmd": true, "copy": true, "entrypoint": true, "env": true,
	"expose": true, "from": true, "healthcheck": true, "label": true, "maintainer": true,
	"onbuild": true, "run": true, "shell": true, "stopsignal": true, "user": true,
	"volume": true, "workdir": true,
}

// parseStages parses the Dockerfile into stages with their FROM and
// --from uses expanded and resolved to earlier stages where they name one.
func parseStages(dockerfile []byte, buildArgs map[string]string) ([]stage, error) {
	ast, escape, err := parse(dockerfile)
	if err != nil {
		return nil, err
	}
	lex := buildkitshell.NewLex(escape)
	globals := builtinArgs()
	for k, v := range buildArgs {
		globals[k] = v
	}
	heading := map[string]string{} // ARG defaults before the first FROM
	var stages []stage
	for _, node := range ast.Children {
		if !instructions[node.Value] {
			return nil, fmt.Errorf("Dockerfile line %d: unknown instruction %q", node.StartLine, firstWord(node.Original))
		}
		expand := func(word string) (string, error) {
			s, _, err := lex.ProcessWord(word, argEnv{globals, heading})
			if err != nil {
				return "", fmt.Errorf("Dockerfile line %d: expanding %q: %w", node.StartLine, word, err)
			}
			return s, nil
		}
		if node.Value != "from" && len(stages) == 0 {
			if node.Value != "arg" {
				return nil, fmt.Errorf("Dockerfile line %d: %s before the first FROM", node.StartLine, strings.ToUpper(node.Value))
			}
			if err := addHeadingArgs(node, expand, heading); err != nil {
				return nil, err
			}
			continue
		}
		switch node.Value {
		case "from":
			st, err := fromStage(node, expand, stages)
			if err != nil {
				return nil, err
			}
			stages = append(stages, st)
		case "copy", "add", "run":
			cur := &stages[len(stages)-1]
			cur.runs = cur.runs || node.Value == "run"
			for _, value := range fromFlags(node) {
				v, err := expand(value)
				if err != nil {
					return nil, err
				}
				if v == "" {
					continue // names a stage-local ARG we do not track
				}
				cur.uses = append(cur.uses, use{value: v, line: node.StartLine, stage: stageIndex(stages[:len(stages)-1], v)})
			}
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("Dockerfile has no FROM instruction")
	}
	return stages, nil
}

// parse runs imagebuilder's parser; on a syntax error it names the line.
func parse(dockerfile []byte) (*parser.Node, rune, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err == nil {
		return res.AST, res.EscapeToken, nil
	}
	return nil, 0, fmt.Errorf("Dockerfile line %d: %w", errorLine(dockerfile, err), err)
}

// errorLine finds the first line at which a prefix of the Dockerfile fails to
// parse with the same error (the parser itself reports no line numbers).
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

// fromStage reads FROM image [AS name].
func fromStage(node *parser.Node, expand func(string) (string, error), earlier []stage) (stage, error) {
	var args []string
	for n := node.Next; n != nil; n = n.Next {
		args = append(args, n.Value)
	}
	var st stage
	switch {
	case len(args) == 1:
	case len(args) == 3 && strings.EqualFold(args[1], "as"):
		st.name = strings.ToLower(args[2])
	default:
		return st, fmt.Errorf("Dockerfile line %d: FROM wants an image and an optional AS name, got %q", node.StartLine, node.Original)
	}
	image, err := expand(args[0])
	if err != nil {
		return st, err
	}
	if image == "" {
		return st, fmt.Errorf("Dockerfile line %d: FROM %s expands to an empty image name", node.StartLine, args[0])
	}
	st.uses = []use{{value: image, line: node.StartLine, stage: stageIndex(earlier, image)}}
	for _, flag := range node.Flags {
		if v, ok := strings.CutPrefix(flag, "--platform="); ok {
			if st.platform, err = expand(v); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// fromFlags returns the unexpanded values of COPY --from= and
// RUN --mount=...,from=... flags.
func fromFlags(node *parser.Node) []string {
	var values []string
	for _, flag := range node.Flags {
		if v, ok := strings.CutPrefix(flag, "--from="); ok && node.Value != "run" {
			values = append(values, v)
		}
		if mount, ok := strings.CutPrefix(flag, "--mount="); ok && node.Value == "run" {
			for _, field := range strings.Split(mount, ",") {
				if v, ok := strings.CutPrefix(field, "from="); ok {
					values = append(values, v)
				}
			}
		}
	}
	return values
}

// addHeadingArgs records ARG name[=default] ... declared before the first
// FROM; defaults may use earlier ARGs and quotes.
func addHeadingArgs(node *parser.Node, expand func(string) (string, error), heading map[string]string) error {
	for n := node.Next; n != nil; n = n.Next {
		k, v, _ := strings.Cut(n.Value, "=")
		v, err := expand(v)
		if err != nil {
			return err
		}
		heading[k] = v
	}
	return nil
}

// stageIndex returns the index of the last earlier stage named value (by AS
// name or by position), or -1 if value is not a stage.
func stageIndex(earlier []stage, value string) int {
	lower := strings.ToLower(value)
	for i := len(earlier) - 1; i >= 0; i-- {
		if earlier[i].name != "" && earlier[i].name == lower {
			return i
		}
	}
	if i, err := strconv.Atoi(value); err == nil && i >= 0 && i < len(earlier) {
		return i
	}
	return -1
}

// targetStage returns the index of the stage named target ("" = the last).
func targetStage(stages []stage, target string) (int, error) {
	if target == "" {
		return len(stages) - 1, nil
	}
	if i := stageIndex(stages, target); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("target stage %q not found in Dockerfile", target)
}

// neededStages marks the stages the stage last depends on (itself included).
// Uses only point at earlier stages, so one backwards pass suffices.
func neededStages(stages []stage, last int) []bool {
	needed := make([]bool, len(stages))
	needed[last] = true
	for i := last; i >= 0; i-- {
		if !needed[i] {
			continue
		}
		for _, u := range stages[i].uses {
			if u.stage >= 0 {
				needed[u.stage] = true
			}
		}
	}
	return needed
}

func isScratch(image string) bool { return strings.EqualFold(image, "scratch") }

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return s
}

// PlatformArgs are the automatic platform ARGs of a build for target on the build platform
// build (both "os/arch[/variant]"), as BuildKit and buildah define them; build args given as
// these override them when expanding FROM lines.
func PlatformArgs(target, build string) map[string]string {
	args := map[string]string{}
	for prefix, platform := range map[string]string{"TARGET": target, "BUILD": build} {
		parts := append(strings.SplitN(platform, "/", 3), "", "")
		args[prefix+"PLATFORM"] = platform
		args[prefix+"OS"], args[prefix+"ARCH"], args[prefix+"VARIANT"] = parts[0], parts[1], parts[2]
	}
	return args
}

// targetStages are the stages building target needs, in order; platformArgs (see PlatformArgs)
// and then buildArgs expand the FROM lines and their --platform flags.
func targetStages(dockerfile []byte, buildArgs, platformArgs map[string]string, target string) ([]stage, error) {
	args := map[string]string{}
	maps.Copy(args, platformArgs)
	maps.Copy(args, buildArgs)
	stages, err := parseStages(dockerfile, args)
	if err != nil {
		return nil, err
	}
	last, err := targetStage(stages, target)
	if err != nil {
		return nil, err
	}
	needed := neededStages(stages, last)
	var out []stage
	for i, st := range stages[:last+1] {
		if needed[i] {
			out = append(out, st)
		}
	}
	return out, nil
}

// CrossStageImages returns, by platform, the external images that FROM lines with a --platform
// flag other than the build's target platform read, for the stages target needs: a build for one
// platform needs those images of another (e.g. FROM --platform=$BUILDPLATFORM golang AS build).
// platformArgs (see PlatformArgs) and then buildArgs expand the flags and images.
func CrossStageImages(dockerfile []byte, buildArgs, platformArgs map[string]string, target string) (map[string][]Ref, error) {
	stages, err := targetStages(dockerfile, buildArgs, platformArgs, target)
	if err != nil {
		return nil, err
	}
	out := map[string][]Ref{}
	for _, st := range stages {
		from := st.uses[0]
		if st.platform == "" || st.platform == platformArgs["TARGETPLATFORM"] || from.stage >= 0 || isScratch(from.value) {
			continue
		}
		normalized, err := Normalize(from.value)
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: invalid image reference %q: %w", from.line, from.value, err)
		}
		out[st.platform] = append(out[st.platform], Ref{Original: from.value, Line: from.line, Normalized: normalized})
	}
	return out, nil
}

// RunsOnTarget reports whether a stage target needs, built for the target platform (no
// --platform flag, or one naming it), has a RUN instruction: only then must the machine run the
// target platform's programs. platformArgs (see PlatformArgs) and then buildArgs expand the flags.
func RunsOnTarget(dockerfile []byte, buildArgs, platformArgs map[string]string, target string) (bool, error) {
	stages, err := targetStages(dockerfile, buildArgs, platformArgs, target)
	if err != nil {
		return false, err
	}
	for _, st := range stages {
		if st.runs && (st.platform == "" || st.platform == platformArgs["TARGETPLATFORM"]) {
			return true, nil
		}
	}
	return false, nil
}

// builtinArgs are the platform ARGs buildah predefines for FROM lines.
func builtinArgs() map[string]string {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	return map[string]string{
		"TARGETPLATFORM": platform, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "TARGETVARIANT": "",
		"BUILDPLATFORM": platform, "BUILDOS": runtime.GOOS, "BUILDARCH": runtime.GOARCH, "BUILDVARIANT": "",
	}
}

// argEnv looks names up in build args first, then ARG defaults, as buildah
// does when it expands FROM lines.
type argEnv struct{ args, heading map[string]string }

func (e argEnv) Get(key string) (string, bool) {
	if v, ok := e.args[key]; ok {
		return v, true
	}
	v, ok := e.heading[key]
	return v, ok
}

func (e argEnv) Keys() []string {
	keys := make([]string, 0, len(e.args)+len(e.heading))
	for k := range e.args {
		keys = append(keys, k)
	}
	for k := range e.heading {
		keys = append(keys, k)
	}
	return keys
}
