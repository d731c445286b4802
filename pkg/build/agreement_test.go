package build

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/cachekey"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
)

// TestModelAgreesWithBuildah reads each Dockerfile of the table into the model, maps its images
// onto loaded bases, computes its cache keys, and builds it with buildah, and checks that the
// three agree: the same stages, the same bases (every image is a loaded base under a registry
// that does not resolve, so an image the model missed fails the build), the same steps of the
// final stage in the same order, and for each RUN the same build args. The RUN steps of the
// Dockerfiles test what buildah built (a stage that shadows an image, a file a --from copied).
func TestModelAgreesWithBuildah(t *testing.T) {
	bb := busybox(t)
	dir := t.TempDir()
	onbuild := withOnBuild(t, bb.image, "RUN echo triggered > /onbuild")
	onbuildArchive := filepath.Join(dir, "onbuild.tar")
	onbuild = saveOCIArchive(t, onbuildArchive, filepath.Join(dir, "onbuild-layout"), onbuild)

	type loaded struct {
		image   v1.Image
		archive string
	}
	bases := map[string]loaded{
		"busybox":                      {bb.image, bb.ociArchive},
		"registry.invalid/base:1":      {bb.image, bb.ociArchive},
		"registry.invalid/other:2":     {bb.image, bb.ociArchive},
		"registry.invalid/tools:3":     {bb.image, bb.ociArchive},
		"registry.invalid/onbuild:1.0": {onbuild, onbuildArchive},
	}
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]string
		target     string
		stages     []string // the model's stages, by name
		images     []string // the images the model names, normalized
	}{
		{
			name:       "ARG before FROM with defaults",
			dockerfile: "ARG BASE=registry.invalid/base:1\nARG V=1\nFROM ${BASE}\nARG V\nRUN test \"$V\" = 1\n",
			stages:     []string{"0"},
			images:     []string{"registry.invalid/base:1"},
		},
		{
			name:       "ARG before FROM overridden by build args",
			dockerfile: "ARG BASE=registry.invalid/base:1\nARG V=1\nFROM ${BASE}\nARG V\nARG W=w\nRUN test \"$V$W\" = 2x\n",
			args:       map[string]string{"BASE": "registry.invalid/other:2", "V": "2", "W": "x", "UNUSED": "u"},
			stages:     []string{"0"},
			images:     []string{"registry.invalid/other:2"},
		},
		{
			name: "FROM --platform with the platform ARGs",
			dockerfile: "FROM --platform=$BUILDPLATFORM busybox AS tools\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n" +
				"FROM busybox\nARG TARGETARCH\nCOPY --from=tools /arch /arch\nRUN test \"$(cat /arch)\" = \"$TARGETARCH\"\n",
			stages: []string{"tools", "1"},
			images: []string{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
		},
		{
			name: "a stage named like an image shadows it",
			dockerfile: "FROM registry.invalid/base:1 AS busybox\nRUN touch /from-stage\n" +
				"FROM busybox\nRUN test -e /from-stage\n",
			stages: []string{"busybox", "1"},
			images: []string{"registry.invalid/base:1"},
		},
		{
			name: "COPY --from an image and --from a stage index, unused stage skipped",
			dockerfile: "FROM registry.invalid/other:2\nRUN echo zero > /zero\n" +
				"FROM registry.invalid/unused:9 AS unused\n" +
				"FROM registry.invalid/base:1\nCOPY --from=registry.invalid/tools:3 /bin/busybox /tool\nCOPY --from=0 /zero /zero\nRUN test -x /tool && test -e /zero\n",
			stages: []string{"0", "2"},
			images: []string{"registry.invalid/other:2", "registry.invalid/base:1", "registry.invalid/tools:3"},
		},
		{
			name:       "target stops at its stage",
			dockerfile: "FROM registry.invalid/base:1 AS dev\nARG V\nRUN test \"$V\" = t\nFROM registry.invalid/other:2\nRUN false\n",
			args:       map[string]string{"V": "t"},
			target:     "dev",
			stages:     []string{"dev"},
			images:     []string{"registry.invalid/base:1"},
		},
		{
			name:       "heredocs",
			dockerfile: "FROM busybox\nARG GREETING=hi\nRUN <<EOF\necho $GREETING > /greeting\nEOF\nCOPY <<EOF /file\ncontent\nEOF\nRUN test \"$(cat /greeting)$(cat /file)\" = hicontent\n",
			stages:     []string{"0"},
			images:     []string{"docker.io/library/busybox:latest"},
		},
		{
			name:       "ONBUILD in a base",
			dockerfile: "FROM registry.invalid/onbuild:1.0\nRUN test \"$(cat /onbuild)\" = triggered\n",
			stages:     []string{"0"},
			images:     []string{"registry.invalid/onbuild:1.0"},
		},
		{
			name:       "escaped newlines and a syntax directive",
			dockerfile: "# syntax=docker/dockerfile:1\nFROM \\\n  busybox\nENV A=1 \\\n    B=2\nRUN echo $A \\\n  $B > /ab && test \"$(cat /ab)\" = \"1 2\"\n",
			stages:     []string{"0"},
			images:     []string{"docker.io/library/busybox:latest"},
		},
		{
			name:       "an escape directive",
			dockerfile: "# escape=`\nFROM busybox\nRUN echo a `\n  b > /ab && test \"$(cat /ab)\" = \"a b\"\n",
			stages:     []string{"0"},
			images:     []string{"docker.io/library/busybox:latest"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctxDir := t.TempDir()
			path := filepath.Join(ctxDir, "Dockerfile")
			if err := os.WriteFile(path, []byte(tt.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			model, err := dockerfile.Parse([]byte(tt.dockerfile), dockerfile.Args{BuildArgs: tt.args, Target: tt.target})
			if err != nil {
				t.Fatalf("dockerfile.Parse: %v", err)
			}
			var stages, images []string
			for _, st := range model.Stages {
				stages = append(stages, st.Name)
			}
			for _, ref := range model.Images() {
				images = append(images, ref.Normalized)
			}
			if !reflect.DeepEqual(stages, tt.stages) || !reflect.DeepEqual(images, tt.images) {
				t.Fatalf("model: stages %q, images %q; want %q, %q", stages, images, tt.stages, tt.images)
			}

			// Base mapping: every image the model names is a loaded base.
			var described []dockerfile.Base
			var order []string
			for name := range bases {
				order = append(order, name)
			}
			slices.Sort(order)
			for _, name := range order {
				described = append(described, dockerfile.Base{Name: name})
			}
			mapping := dockerfile.MapBases(model.Images(), described)
			if len(mapping.Uncovered) > 0 {
				t.Fatalf("uncovered: %+v", mapping.Uncovered)
			}
			names := map[int][]string{}
			identities := map[string]cachekey.Image{}
			for _, m := range mapping.Matches {
				names[m.Base] = append(names[m.Base], m.Ref.Normalized)
				identities[m.Ref.Normalized] = identityOf(t, bases[order[m.Base]].image)
			}
			var loadedBases []Base
			for i, ns := range names {
				b := bases[order[i]]
				loadedBases = append(loadedBases, Base{Names: ns, Transport: "oci-archive", Path: b.archive, Image: b.image})
			}

			// Cache keys.
			plan, err := cachekey.NewPlan(cachekey.Input{Model: model, ContextDir: ctxDir, Format: "oci", Images: identities})
			if err != nil {
				t.Fatalf("cachekey.NewPlan: %v", err)
			}
			var planStages []string
			for _, s := range plan.Stages {
				planStages = append(planStages, s.Name)
			}
			if !reflect.DeepEqual(planStages, tt.stages) {
				t.Errorf("cache keys: stages %q, want %q", planStages, tt.stages)
			}

			// The build.
			var out strings.Builder
			log := logrus.New()
			log.SetOutput(&out)
			res, err := Build(context.Background(), Options{
				ContextDir: ctxDir, Dockerfile: path, Model: model, BuildArgs: tt.args, Target: tt.target,
				WorkDir: t.TempDir(), Bases: loadedBases, Log: log, Stderr: &out,
			})
			if err != nil {
				t.Fatalf("Build: %v\n%s", err, out.String())
			}
			defer res.Close()
			if got := builtStages(res.Steps); got != len(tt.stages) {
				t.Errorf("buildah built %d stages, the model has %d:\n%s", got, len(tt.stages), out.String())
			}
			final := plan.Final().Steps[1:] // after the FROM
			if got, want := historyLen(t, res.Image), chainSteps(t, model, plan, bases[model.FinalBase().Original].image); got != want {
				t.Errorf("buildah's image has %d history entries, the model and keys say %d", got, want)
			}
			steps := builtSteps(t, res.Image, len(final))
			if len(steps) != len(final) {
				t.Fatalf("buildah's final stage has %d steps %q, the cache keys %d %+v", len(steps), steps, len(final), final)
			}
			for i, s := range final {
				got := steps[i]
				if want := strings.ToUpper(strings.Fields(s.Instruction)[0]); got.command != want {
					t.Errorf("step %d: buildah ran %s, the cache keys have %q", i+1, got.command, s.Instruction)
				}
				if got.command == "RUN" && !sameArgs(got.args, s.Args) {
					t.Errorf("step %d %q: buildah's args %v, the cache keys' %v", i+1, s.Instruction, got.args, s.Args)
				}
			}
		})
	}
}

// TestModelRefusesWhatBuildahRefuses: an unknown instruction fails the model at its line, before
// anything is loaded or pulled; buildah, given the same file, fails on it when it reaches it.
func TestModelRefusesWhatBuildahRefuses(t *testing.T) {
	const text = "FROM busybox\nRUN true\nFROBNICATE x\n"
	_, err := dockerfile.Parse([]byte(text), dockerfile.Args{})
	if err == nil || !strings.Contains(err.Error(), `line 3: unknown instruction "FROBNICATE"`) {
		t.Fatalf("model: got %v", err)
	}
	bb := busybox(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	log := logrus.New()
	log.SetOutput(&out)
	res, err := Build(context.Background(), Options{
		ContextDir: dir, Dockerfile: path, Model: model(t, "FROM busybox\nRUN true\n"), WorkDir: t.TempDir(),
		Bases: []Base{{Names: []string{"docker.io/library/busybox:latest"}, Transport: "oci-archive", Path: bb.ociArchive, Image: bb.image}},
		Log:   log, Stderr: &out,
	})
	if err == nil {
		res.Close()
		t.Fatalf("buildah built a Dockerfile with an unknown instruction:\n%s", out.String())
	}
	if !strings.Contains(strings.ToLower(err.Error()), "unknown instruction") {
		t.Errorf("buildah: got %v", err)
	}
}

// builtStep is a step of the final stage as the built image's history records it.
type builtStep struct {
	command string            // RUN, COPY, ENV, ...
	args    map[string]string // a RUN's build args
}

// runArgs is the build args prefix buildah writes in a RUN's history: "|2 A=1 B=2 /bin/sh -c ...".
var runArgs = regexp.MustCompile(`(?s)^\|(\d+) (.*)$`)

// nop is how buildah records a step that is not a RUN: "/bin/sh -c #(nop) COPY ...".
var nop = regexp.MustCompile(`#\(nop\) ([A-Z]+)`)

// builtSteps reads the last n history entries of img: the steps of its final stage.
func builtSteps(t *testing.T, img v1.Image, n int) []builtStep {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if n > len(cf.History) {
		t.Fatalf("the image has %d history entries, the final stage %d steps", len(cf.History), n)
	}
	var steps []builtStep
	for _, h := range cf.History[len(cf.History)-n:] {
		if m := nop.FindStringSubmatch(h.CreatedBy); m != nil {
			steps = append(steps, builtStep{command: m[1]})
			continue
		}
		s := builtStep{command: "RUN", args: map[string]string{}}
		if m := runArgs.FindStringSubmatch(h.CreatedBy); m != nil {
			fields := strings.Fields(m[2])
			n := len(fields)
			if c, _ := strconv.Atoi(m[1]); c <= n {
				n = c
			}
			for _, kv := range fields[:n] {
				k, v, _ := strings.Cut(kv, "=")
				s.args[k] = v
			}
		}
		steps = append(steps, s)
	}
	return steps
}

// sameArgs compares a RUN's args in buildah's history with the ones a cache key hashed.
func sameArgs(built, keyed map[string]string) bool {
	if len(built) != len(keyed) {
		return false
	}
	for k, v := range built {
		if keyed[k] != cachekey.ShortHash(v) {
			return false
		}
	}
	return true
}

// builtStages counts the stages buildah ran steps of.
func builtStages(steps []Step) int {
	seen := map[int]bool{}
	for _, s := range steps {
		seen[s.Stage] = true
	}
	return len(seen)
}

// chainSteps is the history length the model and the cache keys give the built image: the final
// base's, and a step for each instruction of the stages from it to the target.
func chainSteps(t *testing.T, model *dockerfile.Model, plan *cachekey.Plan, base v1.Image) int {
	t.Helper()
	n := historyLen(t, base)
	st := model.Target()
	for {
		i := slices.IndexFunc(plan.Stages, func(s *cachekey.Stage) bool { return s.Position == st.Position })
		n += len(plan.Stages[i].Steps) - 1
		if st.From.Stage < 0 {
			return n
		}
		next, ok := model.StageNamed(strconv.Itoa(st.From.Stage), st.Position)
		if !ok {
			t.Fatalf("stage %d is not in the model", st.From.Stage)
		}
		st = next
	}
}

func historyLen(t *testing.T, img v1.Image) int {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return len(cf.History)
}

func identityOf(t *testing.T, img v1.Image) cachekey.Image {
	t.Helper()
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cachekey.Image{ID: id.String(), Env: cf.Config.Env, OnBuild: cf.Config.OnBuild}
}

// withOnBuild is img with ONBUILD triggers in its config.
func withOnBuild(t *testing.T, img v1.Image, triggers ...string) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.OnBuild = triggers
	out, err := mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
