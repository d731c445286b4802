// Package cachekey computes, without building, a cache key for every instruction of the stages a
// Dockerfile's model (pkg/dockerfile) says a build runs, and explains why an earlier build's keys
// differ.
//
// A key is the hash of its parent's key, the instruction after ARG and ENV expansion, the build
// args it uses (a RUN uses every build arg in scope, as it sees them in its environment; any
// other instruction the ones it names), the content of the context files a COPY or ADD reads,
// and the keys of the stages or the identity of the images it reads from. A stage's first key
// (its FROM) derives from the base image's identity, the platform and the manifest format. The
// instructions are evaluated with the model's imagebuilder stages, set up as buildah sets up its
// own, so the stages, ONBUILD triggers, ARG scoping and expansion are the same as in the build.
//
// The package is pure logic: images are identified by the caller.
package cachekey

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	docker "github.com/fsouza/go-dockerclient"
	"github.com/openshift/imagebuilder"
	"github.com/openshift/imagebuilder/dockerfile/parser"

	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
)

// Version is the version of the key scheme; keys of other versions never match.
const Version = 1

// Input is what the keys depend on.
type Input struct {
	Model          *dockerfile.Model // the Dockerfile, its build args, target and platform
	DockerfilePath string            // for <Dockerfile>.dockerignore; may be ""
	ContextDir     string
	Format         string // manifest format: "oci" or "docker"
	Squash         bool
	NoCacheStages  []string // stage names whose steps never hit
	// Images identifies the external images the Dockerfile names (FROM, COPY --from,
	// RUN --mount from=), by normalized reference (dockerfile.Normalize). A missing one makes
	// the steps that read it never hit.
	Images map[string]Image
}

// Image is an external image as the keys see it.
type Image struct {
	ID      string   // its config digest: the same content has the same ID
	Env     []string // its config's environment, for expansion
	OnBuild []string // its ONBUILD triggers, which run first in a stage built on it
}

// Plan is the keys of the stages the target needs, in Dockerfile order; the last is the target.
type Plan struct {
	Platform, Format string
	Squash           bool
	Stages           []*Stage
}

// Stage is one FROM section.
type Stage struct {
	Name     string // AS name, or the position as a string
	Position int
	Base     string // the base: an image reference, "stage <name>" or "scratch"
	Image    string // the base image's normalized reference; "" for a stage or scratch
	Steps    []Step // Steps[0] is the FROM
	config   docker.Config
}

// Step is one instruction with its key and what the key was made of, in short.
type Step struct {
	Instruction string            // as buildah prints it
	Key         string            // hex
	Args        map[string]string // build args used: name -> short hash of the value
	Files       map[string]string // context entries read: path -> short hash
	Sources     map[string]string // COPY/ADD sources: source -> short hash of all it names
	Reads       []string          // stages ("stage <name>") and images the step reads
	Layer       bool              // the step adds a layer (RUN, COPY, ADD)
	Volatile    string            // why the step never hits, "" if it can
}

// Final is the target stage.
func (p *Plan) Final() *Stage { return p.Stages[len(p.Stages)-1] }

// NewPlan evaluates the model's stages and computes every key.
func NewPlan(in Input) (*Plan, error) {
	stages, err := in.Model.Evaluate()
	if err != nil {
		return nil, err
	}
	files, err := newContextFiles(in.ContextDir, in.DockerfilePath)
	if err != nil {
		return nil, err
	}
	p := &planner{in: in, stages: stages, files: files, done: map[int]*Stage{}}
	if _, err := p.stage(in.Model.Target().Position); err != nil {
		return nil, err
	}
	plan := &Plan{Platform: in.Model.Platform, Format: in.Format, Squash: in.Squash}
	for _, i := range slices.Sorted(maps.Keys(p.done)) {
		plan.Stages = append(plan.Stages, p.done[i])
	}
	return plan, nil
}

type planner struct {
	in     Input
	stages imagebuilder.Stages // evaluated afresh for the plan
	files  *contextFiles
	done   map[int]*Stage
}

// stage evaluates stage i (and, first, the stages it reads from).
func (p *planner) stage(i int) (*Stage, error) {
	if s, ok := p.done[i]; ok {
		return s, nil
	}
	st := p.stages[i]
	b := st.Builder
	from, err := b.From(st.Node)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", st.Name, err)
	}
	s := &Stage{Name: st.Name, Position: i}
	base, identity, err := p.base(i, from)
	if err != nil {
		return nil, err
	}
	s.Base, s.Image = identity.describe, identity.image
	if err := b.FromImage(base, st.Node); err != nil {
		return nil, fmt.Errorf("stage %s: %w", st.Name, err)
	}
	s.Steps = append(s.Steps, Step{Instruction: fromInstruction(from, st.Name), Key: p.rootKey(identity.id), Reads: identity.reads, Volatile: identity.volatile})

	declared := map[string]bool{}
	for _, node := range st.Node.Children {
		step := b.Step()
		if err := step.Resolve(node); err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", node.StartLine, err)
		}
		inScope := argMap(b.Arguments())
		rec := &recorder{}
		if err := b.Run(step, rec, false); err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", node.StartLine, err)
		}
		if step.Command == "arg" {
			for _, a := range step.Args {
				declared[strings.SplitN(a, "=", 2)[0]] = true
			}
		}
		parent := s.Steps[len(s.Steps)-1]
		next, err := p.step(i, parent, node, step, usedArgs(step, node, inScope, declared), rec)
		if err != nil {
			return nil, err
		}
		if next.Volatile == "" && p.noCache(st.Name) {
			next.Volatile = "stage " + st.Name + " is in no_cache_stages"
		}
		if next.Volatile != "" {
			next.Key = randomKey()
		}
		s.Steps = append(s.Steps, next)
	}
	s.config = *b.Config()
	s.config.Env = mergeEnv(b.Env, b.RunConfig.Env)
	p.done[i] = s
	return s, nil
}

// identity is what a stage's FROM, or a step's --from, reads.
type identity struct {
	id       string // what the key hashes
	image    string // normalized reference of an image
	describe string
	reads    []string
	volatile string
}

// base returns the image a stage starts from, as imagebuilder wants it, and its identity.
func (p *planner) base(i int, from string) (*docker.Image, identity, error) {
	if strings.EqualFold(from, "scratch") {
		return &docker.Image{Config: &docker.Config{Image: from}}, identity{id: "scratch", describe: "scratch"}, nil
	}
	if st, ok := p.in.Model.StageNamed(from, i); ok {
		prev, err := p.stage(st.Position)
		if err != nil {
			return nil, identity{}, err
		}
		cfg := prev.config
		cfg.Image = from
		return &docker.Image{Config: &cfg}, p.stageIdentity(prev), nil
	}
	img, id := p.image(from)
	return &docker.Image{Config: &docker.Config{Image: from, Env: img.Env, OnBuild: img.OnBuild}}, id, nil
}

func (p *planner) stageIdentity(s *Stage) identity {
	last := s.Steps[len(s.Steps)-1]
	return identity{id: "stage " + last.Key, describe: "stage " + s.Name, reads: []string{"stage " + s.Name}}
}

// image identifies an external image; an unknown one never hits.
func (p *planner) image(ref string) (Image, identity) {
	normalized, err := dockerfile.Normalize(ref)
	if err != nil {
		return Image{}, identity{id: randomKey(), describe: ref, reads: []string{ref}, volatile: fmt.Sprintf("%q is not a valid image reference", ref)}
	}
	img, ok := p.in.Images[normalized]
	if !ok || img.ID == "" {
		return Image{}, identity{id: randomKey(), image: normalized, describe: normalized, reads: []string{normalized}, volatile: "image " + normalized + " could not be identified"}
	}
	return img, identity{id: "image " + img.ID, image: normalized, describe: normalized + "@" + img.ID, reads: []string{normalized}}
}

// reads identifies what a --from names: an earlier stage or an image.
func (p *planner) reads(i int, from string) (identity, error) {
	if st, ok := p.in.Model.StageNamed(from, i); ok {
		prev, err := p.stage(st.Position)
		if err != nil {
			return identity{}, err
		}
		return p.stageIdentity(prev), nil
	}
	_, id := p.image(from)
	return id, nil
}

func (p *planner) rootKey(base string) string {
	return hashString(fmt.Sprintf("buildah-image-resource cache key v%d\nplatform %s\nformat %s\nsquash %t\nbase %s\n",
		Version, p.in.Model.Platform, p.in.Format, p.in.Squash, base))
}

func (p *planner) noCache(name string) bool {
	return slices.ContainsFunc(p.in.NoCacheStages, func(n string) bool { return strings.EqualFold(n, name) })
}

// keyInput is everything a step's key hashes besides its parent's key.
type keyInput struct {
	Command  string
	Original string
	Args     []string
	Flags    []string
	Heredocs []string
	Copies   []imagebuilder.Copy
	Runs     []imagebuilder.Run
	BuildArg map[string]string // full values
	Files    map[string]string // full hashes
	Reads    []string          // identities
}

// step computes the key of one instruction.
func (p *planner) step(stage int, parent Step, node *parser.Node, step *imagebuilder.Step, args map[string]string, rec *recorder) (Step, error) {
	in := keyInput{
		Command: step.Command, Original: node.Original, Args: step.Args, Flags: step.Flags,
		Copies: rec.copies, Runs: rec.runs, BuildArg: args, Files: map[string]string{},
	}
	for _, h := range step.Heredocs {
		in.Heredocs = append(in.Heredocs, h.Name+"\x00"+h.Content)
	}
	out := Step{Instruction: instruction(node), Args: shortHashes(args), Layer: requiresLayer(step.Command)}

	for _, c := range rec.copies {
		var err error
		switch {
		case c.From != "":
			err = p.addRead(stage, c.From, &in, &out)
		case remoteSource(c) != "":
			out.Volatile = firstNonEmpty(out.Volatile, remoteSource(c))
		default:
			err = p.addContext(contextSources(c), &in, &out)
		}
		if err != nil {
			return Step{}, err
		}
	}
	for _, r := range rec.runs {
		for _, spec := range r.Mounts {
			mount, err := dockerfile.ParseMount(spec)
			switch {
			case err != nil:
			case mount.Type != "bind":
				continue // cache, secret, tmpfs, ssh: not content the key can know
			case mount.From != "":
				err = p.addRead(stage, mount.From, &in, &out)
			default:
				err = p.addContext([]string{firstNonEmpty(mount.Source, ".")}, &in, &out)
			}
			if err != nil {
				return Step{}, err
			}
		}
	}
	if strings.EqualFold(step.Command, "add") && len(step.Heredocs) == 0 && len(rec.copies) == 0 {
		out.Volatile = "ADD without sources"
	}
	data, err := json.Marshal(in)
	if err != nil {
		return Step{}, fmt.Errorf("computing cache key: %w", err)
	}
	out.Key = hashString(parent.Key + "\n" + string(data))
	return out, nil
}

// addRead adds what a --from names (a stage or an image) to a step's inputs.
func (p *planner) addRead(stage int, from string, in *keyInput, out *Step) error {
	id, err := p.reads(stage, from)
	if err != nil {
		return err
	}
	in.Reads, out.Reads = append(in.Reads, id.id), append(out.Reads, id.reads...)
	out.Volatile = firstNonEmpty(out.Volatile, id.volatile)
	return nil
}

// addContext adds the context files the sources name to a step's inputs.
func (p *planner) addContext(srcs []string, in *keyInput, out *Step) error {
	files, perSource, err := p.files.sources(srcs)
	if err != nil {
		return err
	}
	maps.Copy(in.Files, files)
	out.Files, out.Sources = merged(out.Files, shortHashes(files)), merged(out.Sources, shortHashes(perSource))
	return nil
}

// usedArgs returns the build args a step uses with their values: for RUN every arg in scope
// (they are in its environment; proxy variables only when declared, as buildah does), for other
// instructions the args their text names.
func usedArgs(step *imagebuilder.Step, node *parser.Node, inScope map[string]string, declared map[string]bool) map[string]string {
	used := map[string]string{}
	if step.Command == "run" {
		for k, v := range inScope {
			if proxyVars[k] && !declared[k] {
				continue
			}
			used[k] = v
		}
		return used
	}
	text := node.Original + " " + strings.Join(step.Flags, " ")
	for _, h := range step.Heredocs {
		text += "\n" + h.Content
	}
	for _, m := range varReference.FindAllStringSubmatch(text, -1) {
		if v, ok := inScope[m[1]]; ok {
			used[m[1]] = v
		}
	}
	return used
}

var varReference = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// proxyVars are the args buildah accepts undeclared and leaves out of the history.
var proxyVars = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true, "ALL_PROXY": true, "all_proxy": true,
}

// remoteSource says why a COPY/ADD source cannot be keyed: URLs and git repositories, unless
// ADD --checksum pins the content.
func remoteSource(c imagebuilder.Copy) string {
	for _, src := range c.Src {
		remote := strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") ||
			strings.HasPrefix(src, "git@") || strings.HasPrefix(src, "git://")
		if remote && c.Checksum == "" {
			return "ADD " + src + " is fetched on every build"
		}
	}
	return ""
}

// contextSources are the sources of a copy that are context paths (not heredocs or URLs).
func contextSources(c imagebuilder.Copy) []string {
	var srcs []string
	for _, src := range c.Src {
		if strings.HasPrefix(src, "<<") || strings.Contains(src, "://") {
			continue
		}
		srcs = append(srcs, src)
	}
	return srcs
}

// recorder is the imagebuilder executor of the dry run: it keeps the copies and runs a step
// asks for and does nothing.
type recorder struct {
	copies []imagebuilder.Copy
	runs   []imagebuilder.Run
}

func (r *recorder) Preserve(string) error                                    { return nil }
func (r *recorder) EnsureContainerPath(string) error                         { return nil }
func (r *recorder) EnsureContainerPathAs(string, string, *os.FileMode) error { return nil }
func (r *recorder) UnrecognizedInstruction(*imagebuilder.Step) error         { return nil }
func (r *recorder) Copy(_ []string, copies ...imagebuilder.Copy) error {
	r.copies = append(r.copies, copies...)
	return nil
}
func (r *recorder) Run(run imagebuilder.Run, _ docker.Config) error {
	r.runs = append(r.runs, run)
	return nil
}

func fromInstruction(from, name string) string {
	if _, err := strconv.Atoi(name); err == nil || name == "" {
		return "FROM " + from
	}
	return "FROM " + from + " AS " + name
}

// instruction is the step as buildah prints it: heredocs summed up by their first line.
func instruction(node *parser.Node) string {
	text := strings.TrimSpace(node.Original)
	for _, doc := range node.Heredocs {
		lines := strings.Split(strings.ReplaceAll(strings.TrimSpace(doc.Content), "\r\n", "\n"), "\n")
		summary := lines[0]
		if len(lines) > 1 {
			summary += "..."
		}
		text += " (" + summary + ")"
	}
	return text
}

func requiresLayer(command string) bool {
	switch strings.ToLower(command) {
	case "run", "copy", "add":
		return true
	}
	return false
}

func argMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// mergeEnv lays override over base, keeping base's order.
func mergeEnv(base, override []string) []string {
	out := slices.Clone(base)
	for _, kv := range override {
		k, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(e string) bool { return strings.HasPrefix(e, k+"=") || e == k })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

// ShortHash is how values and files are shown in a record: enough to tell them apart.
func ShortHash(s string) string { return hashString(s)[:12] }

func shortHashes(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = ShortHash(v)
	}
	return out
}

func merged(a, b map[string]string) map[string]string {
	if a == nil {
		return b
	}
	maps.Copy(a, b)
	return a
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
