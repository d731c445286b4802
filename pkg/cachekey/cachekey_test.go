package cachekey

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
)

const base = "registry.example.com/base:1"

// build is what a test plans: the Dockerfile and its args, read into Input's model by plan.
type build struct {
	Input
	Dockerfile []byte
	BuildArgs  map[string]string
	Target     string
	Platform   string
}

// input is a build of dockerfile over a context holding files.
func input(t *testing.T, dockerfile string, files map[string]string) build {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return build{Dockerfile: []byte(dockerfile), Platform: "linux/amd64", Input: Input{
		ContextDir: dir, Format: "oci",
		Images: map[string]Image{base: {ID: "sha256:aaa", Env: []string{"PATH=/bin", "APP=/srv"}}},
	}}
}

func plan(t *testing.T, in build) *Plan {
	t.Helper()
	model, err := dockerfile.Parse(in.Dockerfile, dockerfile.Args{BuildArgs: in.BuildArgs, Target: in.Target, Platform: in.Platform})
	if err != nil {
		t.Fatalf("dockerfile.Parse: %v", err)
	}
	in.Model = model
	p, err := NewPlan(in.Input)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	return p
}

// compare builds the plan of before, records it, and compares the plan of after with it.
func compare(t *testing.T, before, after build) Match {
	t.Helper()
	rec := NewRecord(plan(t, before))
	value, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := Decode(value)
	if err != nil {
		t.Fatal(err)
	}
	return Compare(plan(t, after), decoded, nil)
}

// verdicts renders a match as "hit hit miss(reason) ...".
func verdicts(m Match) string {
	var parts []string
	for _, v := range m.Steps {
		if v.Hit {
			parts = append(parts, "hit")
		} else {
			parts = append(parts, "miss("+v.Reason+")")
		}
	}
	return strings.Join(parts, " ")
}

const app = `FROM registry.example.com/base:1
ARG VERSION=1
ARG UNUSED
COPY go.mod /src/
RUN echo build > /built
COPY src/ /src/
RUN echo $VERSION > /version
COPY $APP/x /y
`

func appFiles() map[string]string {
	return map[string]string{"go.mod": "module x", "src/main.go": "package main", "src/util.go": "package main", "srv/x": "x", "notes.md": "n", ".dockerignore": "*.md\n"}
}

func TestUnchangedBuildHitsEveryStep(t *testing.T) {
	in := input(t, app, appFiles())
	m := compare(t, in, in)
	if !m.AllHit() || m.Hits != 8 || m.LabelsDiffer {
		t.Fatalf("got %s", verdicts(m))
	}
	// A fresh context with the same content (other mtimes) gives the same keys.
	if m := compare(t, in, input(t, app, appFiles())); !m.AllHit() {
		t.Fatalf("same content elsewhere: %s", verdicts(m))
	}
}

func TestWhatMisses(t *testing.T) {
	const earlierMiss = "follows the miss at step"
	for _, tc := range []struct {
		name   string
		change func(in *build)
		want   string // verdicts, with "<" standing for the follow-up misses
	}{
		{"a file copied late", func(in *build) { write(t, in.ContextDir, "src/main.go", "package main // changed") },
			"hit hit hit hit hit miss(src/main.go changed) <6 <6"},
		{"a file added and one removed", func(in *build) {
			write(t, in.ContextDir, "src/new.go", "package main")
			os.Remove(filepath.Join(in.ContextDir, "src/util.go"))
		}, "hit hit hit hit hit miss(src/new.go added, src/util.go removed) <6 <6"},
		{"an ignored file", func(in *build) { write(t, in.ContextDir, "notes.md", "changed") },
			"hit hit hit hit hit hit hit hit"},
		{"a build arg in scope of a RUN", func(in *build) { in.BuildArgs = map[string]string{"VERSION": "2"} },
			"hit hit hit hit miss(build arg VERSION changed) <5 <5 <5"},
		{"a declared arg no step names", func(in *build) { in.BuildArgs = map[string]string{"UNUSED": "x"} },
			"hit hit hit hit miss(build arg UNUSED changed) <5 <5 <5"},
		{"an undeclared build arg", func(in *build) { in.BuildArgs = map[string]string{"OTHER": "x"} },
			"hit hit hit hit hit hit hit hit"},
		{"the base image", func(in *build) { in.Images[base] = Image{ID: "sha256:bbb", Env: in.Images[base].Env} },
			"miss(base image changed (was registry.example.com/base:1@sha256:aaa)) <1 <1 <1 <1 <1 <1 <1"},
		{"the base's env a COPY expands", func(in *build) {
			in.Images[base] = Image{ID: "sha256:aaa", Env: []string{"APP=/other"}}
			write(t, in.ContextDir, "other/x", "x")
		}, "hit hit hit hit hit hit hit miss(other/x added, srv/x removed)"},
		{"an instruction", func(in *build) {
			in.Dockerfile = []byte(strings.Replace(app, "echo build", "echo built", 1))
		}, "hit hit hit hit miss(instruction changed (was \"RUN echo build > /built\")) <5 <5 <5"},
		{"the platform", func(in *build) { in.Platform = "linux/arm64" }, "unusable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := input(t, app, appFiles())
			after := input(t, app, appFiles())
			tc.change(&after)
			m := compare(t, before, after)
			got := verdicts(m)
			for i := 1; i <= 8; i++ {
				got = strings.ReplaceAll(got, fmt.Sprintf("miss(%s %d)", earlierMiss, i), fmt.Sprintf("<%d", i))
			}
			if m.Unusable != "" {
				got = "unusable"
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestMultiStageReadsStageKeys(t *testing.T) {
	const df = `FROM registry.example.com/base:1 AS builder
ARG VERSION
COPY tool.c /
RUN echo $VERSION > /out

FROM registry.example.com/base:1
COPY app /app
COPY --from=builder /out /out
`
	files := map[string]string{"tool.c": "int main;", "app": "app"}
	before := input(t, df, files)
	after := input(t, df, files)
	after.BuildArgs = map[string]string{"VERSION": "2"}
	m := compare(t, before, after)
	if got, want := verdicts(m), "hit hit miss(stage builder changed)"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	p := plan(t, after)
	if len(p.Stages) != 2 || p.Stages[0].Name != "builder" || p.Final().Steps[0].Instruction != "FROM registry.example.com/base:1" {
		t.Errorf("stages: %+v", p.Stages)
	}

	// A stage the target does not need is not evaluated (its image is unknown).
	unneeded := input(t, "FROM registry.example.com/unknown:1 AS other\nRUN x\nFROM registry.example.com/base:1\nRUN y\n", nil)
	if p := plan(t, unneeded); len(p.Stages) != 1 {
		t.Errorf("%d stages planned, want only the target", len(p.Stages))
	}
}

func TestOnBuildTriggersAreSteps(t *testing.T) {
	in := input(t, "FROM registry.example.com/base:1\nRUN echo\n", nil)
	in.Images[base] = Image{ID: "sha256:aaa", OnBuild: []string{"RUN echo triggered"}}
	p := plan(t, in)
	if got := len(p.Final().Steps); got != 3 || p.Final().Steps[1].Instruction != "RUN echo triggered" {
		t.Errorf("steps: %+v", p.Final().Steps)
	}
}

func TestWhatNeverHits(t *testing.T) {
	in := input(t, "FROM registry.example.com/base:1\nADD https://example.com/x /x\nFROM registry.example.com/unknown:1\n", nil)
	in.Target = "0"
	m := compare(t, in, in)
	if got := verdicts(m); got != "hit miss(ADD https://example.com/x is fetched on every build)" {
		t.Errorf("got %s", got)
	}
	in.Target = ""
	if got := verdicts(compare(t, in, in)); !strings.HasPrefix(got, "miss(image registry.example.com/unknown:1 could not be identified)") {
		t.Errorf("got %s", got)
	}
	in = input(t, "FROM registry.example.com/base:1 AS b\nRUN x\n", nil)
	in.NoCacheStages = []string{"B"}
	if got := verdicts(compare(t, in, in)); got != "hit miss(stage b is in no_cache_stages)" {
		t.Errorf("got %s", got)
	}
}

func TestManyFilesAreSummarised(t *testing.T) {
	files := map[string]string{}
	for i := 0; i <= MaxFiles; i++ {
		files[fmt.Sprintf("lib/f%03d", i)] = "x"
	}
	before := input(t, "FROM registry.example.com/base:1\nCOPY lib /lib\n", files)
	after := input(t, "FROM registry.example.com/base:1\nCOPY lib /lib\n", files)
	write(t, after.ContextDir, "lib/f007", "y")
	if got := verdicts(compare(t, before, after)); got != "hit miss(files under lib changed)" {
		t.Errorf("got %s", got)
	}
}

func TestLabelsAreComparedApart(t *testing.T) {
	in := input(t, "FROM registry.example.com/base:1\nRUN x\n", nil)
	rec := NewRecord(plan(t, in))
	rec.SetLabels(map[string]string{"a": "1"}, nil)
	if m := Compare(plan(t, in), rec, map[string]string{"a": "1"}); !m.AllHit() || m.LabelsDiffer {
		t.Errorf("same labels: %+v", m)
	}
	if m := Compare(plan(t, in), rec, map[string]string{"a": "2"}); !m.AllHit() || !m.LabelsDiffer {
		t.Errorf("other labels: %+v", m)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunMountsAndImageSources(t *testing.T) {
	const df = "FROM registry.example.com/base:1\n" +
		"RUN --mount=type=bind,source=scripts,target=/s sh /s/build.sh\n" +
		"RUN --mount=type=cache,target=/root/.cache make\n" +
		"COPY --from=registry.example.com/tools:2 /bin/tool /tool\n" +
		"RUN <<EOF\necho heredoc\nEOF\n"
	files := map[string]string{"scripts/build.sh": "echo 1"}
	withTools := func(in build) build {
		in.Images["registry.example.com/tools:2"] = Image{ID: "sha256:tools1"}
		return in
	}
	before := withTools(input(t, df, files))
	if m := compare(t, before, withTools(input(t, df, files))); !m.AllHit() {
		t.Fatalf("unchanged: %s", verdicts(m))
	}
	after := withTools(input(t, df, files))
	write(t, after.ContextDir, "scripts/build.sh", "echo 2")
	if got := verdicts(compare(t, before, after)); !strings.HasPrefix(got, "hit miss(scripts/build.sh changed)") {
		t.Errorf("bind mount source changed: %s", got)
	}
	after = withTools(input(t, df, files))
	after.Images["registry.example.com/tools:2"] = Image{ID: "sha256:tools2"}
	if got := verdicts(compare(t, before, after)); !strings.HasPrefix(got, "hit hit hit miss(image registry.example.com/tools:2 changed)") {
		t.Errorf("COPY --from image changed: %s", got)
	}
	after = withTools(input(t, strings.Replace(df, "echo heredoc", "echo changed", 1), files))
	if got := verdicts(compare(t, before, after)); got != `hit hit hit hit miss(instruction changed (was "RUN <<EOF (echo heredoc)"))` {
		t.Errorf("heredoc changed: %s", got)
	}
}
