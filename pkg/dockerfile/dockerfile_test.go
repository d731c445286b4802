package dockerfile

import (
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestExternalImages(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]string
		target     string
		want       []Ref
	}{
		{
			name:       "short name",
			dockerfile: "FROM ubuntu\nRUN true\n",
			want:       []Ref{{"ubuntu", 1, "docker.io/library/ubuntu:latest"}},
		},
		{
			name:       "qualified with port and digest",
			dockerfile: "FROM registry.example.com:5000/team/base:1.0 AS a\nFROM busybox@" + digestA + "\nCOPY --from=a / /\n",
			want: []Ref{
				{"registry.example.com:5000/team/base:1.0", 1, "registry.example.com:5000/team/base:1.0"},
				{"busybox@" + digestA, 2, "docker.io/library/busybox@" + digestA},
			},
		},
		{
			name:       "docker.io spellings",
			dockerfile: "FROM index.docker.io/library/alpine:3 AS a\nFROM docker.io/foo/bar\nCOPY --from=a / /\n",
			want: []Ref{
				{"index.docker.io/library/alpine:3", 1, "docker.io/library/alpine:3"},
				{"docker.io/foo/bar", 2, "docker.io/foo/bar:latest"},
			},
		},
		{
			name:       "ARG before FROM with default, both spellings",
			dockerfile: "ARG BASE=ubuntu:22.04\nARG TAG=3\nFROM ${BASE}\nFROM alpine:$TAG\nCOPY --from=0 / /\n",
			want: []Ref{
				{"ubuntu:22.04", 3, "docker.io/library/ubuntu:22.04"},
				{"alpine:3", 4, "docker.io/library/alpine:3"},
			},
		},
		{
			name:       "build arg overrides default",
			dockerfile: "ARG BASE=ubuntu:22.04\nFROM $BASE\n",
			args:       map[string]string{"BASE": "debian:12"},
			want:       []Ref{{"debian:12", 2, "docker.io/library/debian:12"}},
		},
		{
			name:       "quoted default using an earlier ARG, and a fallback",
			dockerfile: "ARG REG=r.example.com\nARG IMG=\"${REG}/app\"\nARG UNSET\nFROM $IMG AS app\nFROM ${UNSET:-busybox}\nRUN --mount=from=app,target=/a true\n",
			want: []Ref{
				{"r.example.com/app", 4, "r.example.com/app:latest"},
				{"busybox", 5, "docker.io/library/busybox:latest"},
			},
		},
		{
			name:       "stage names are not images",
			dockerfile: "FROM golang:1.22 AS build\nRUN go build\nFROM build AS test\nFROM alpine:3\nCOPY --from=build /out /out\nCOPY --from=test /x /x\n",
			want: []Ref{
				{"golang:1.22", 1, "docker.io/library/golang:1.22"},
				{"alpine:3", 4, "docker.io/library/alpine:3"},
			},
		},
		{
			name:       "stage names are case-insensitive, stage by index",
			dockerfile: "FROM busybox AS Builder\nFROM scratch\nCOPY --from=builder /a /a\nCOPY --from=0 /b /b\n",
			want:       []Ref{{"busybox", 1, "docker.io/library/busybox:latest"}},
		},
		{
			name:       "COPY --from image and RUN --mount from image",
			dockerfile: "FROM busybox AS b\nFROM scratch\nCOPY --from=alpine:3 /bin/sh /sh\nCOPY --from=b /x /x\nRUN --mount=type=bind,from=golang:1.22,target=/go --mount=type=cache,target=/c true\n",
			want: []Ref{
				{"busybox", 1, "docker.io/library/busybox:latest"},
				{"alpine:3", 3, "docker.io/library/alpine:3"},
				{"golang:1.22", 5, "docker.io/library/golang:1.22"},
			},
		},
		{
			name:       "--from with a stage-local ARG is skipped",
			dockerfile: "FROM busybox AS a\nFROM scratch\nARG SRC=a\nCOPY --from=$SRC / /\n",
			want:       nil,
		},
		{
			name:       "scratch is not an image",
			dockerfile: "FROM scratch\nCOPY a /a\n",
			want:       nil,
		},
		{
			name:       "target stops at its stage and skips unused stages",
			dockerfile: "FROM alpine:3 AS unused\nFROM busybox AS base\nFROM base AS dev\nCOPY --from=golang:1.22 /a /a\nFROM ubuntu AS prod\n",
			target:     "dev",
			want: []Ref{
				{"busybox", 2, "docker.io/library/busybox:latest"},
				{"golang:1.22", 4, "docker.io/library/golang:1.22"},
			},
		},
		{
			name:       "default target is the last stage",
			dockerfile: "FROM alpine:3 AS unused\nFROM busybox\n",
			want:       []Ref{{"busybox", 2, "docker.io/library/busybox:latest"}},
		},
		{
			name:       "continuation lines and comments keep line numbers",
			dockerfile: "# syntax=docker/dockerfile:1\n\nFROM \\\n  busybox\n# c\nRUN echo \\\n  hi\nCOPY --from=alpine:3 / /\n",
			want: []Ref{
				{"busybox", 3, "docker.io/library/busybox:latest"},
				{"alpine:3", 8, "docker.io/library/alpine:3"},
			},
		},
		{
			name:       "${X:?word} reads as buildah reads it: word is the default",
			dockerfile: "FROM ${BASE:?busybox}\n",
			want:       []Ref{{"busybox", 1, "docker.io/library/busybox:latest"}},
		},
		{
			name:       "platform flag and lower-case instructions",
			dockerfile: "from --platform=$BUILDPLATFORM busybox as b\nfrom b\n",
			want:       []Ref{{"busybox", 1, "docker.io/library/busybox:latest"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := images([]byte(tt.dockerfile), tt.args, tt.target)
			if err != nil {
				t.Fatalf("ExternalImages: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestExternalImagesErrors(t *testing.T) {
	tests := []struct {
		name, dockerfile, target, want string
	}{
		{"no FROM", "# nothing\n", "", "no FROM"},
		{"instruction before FROM", "ARG A\nRUN true\nFROM busybox\n", "", "line 2: RUN before the first FROM"},
		{"unknown instruction", "FROM busybox\nFROBNICATE x\n", "", `line 2: unknown instruction "FROBNICATE"`},
		{"FROM without image", "FROM busybox\n\nFROM\n", "", "line 3:"},
		{"bad AS", "FROM busybox AS\n", "", "line 1:"},
		{"bad reference", "FROM busybox\nFROM Not_Valid:tag:x\n", "", "line 2: invalid image reference"},
		{"empty expansion", "ARG BASE\nFROM $BASE\n", "", "line 2: FROM $BASE expands to an empty image name"},
		{"parser error names the line", "FROM busybox\nRUN true\nLABEL a\n", "", "line 3: LABEL must have two arguments"},
		{"bad escape directive", "# escape=x\nFROM busybox\n", "", "line 1: invalid ESCAPE"},
		{"unterminated heredoc", "FROM busybox\nRUN <<EOF\necho hi\n", "", "line 2:"},
		{"unknown target", "FROM busybox AS a\n", "b", `target stage "b" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := images([]byte(tt.dockerfile), nil, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFinalBase(t *testing.T) {
	tests := []struct {
		name, dockerfile, target string
		want                     *Ref
	}{
		{"single stage", "FROM busybox\n", "", &Ref{"busybox", 1, "docker.io/library/busybox:latest"}},
		{"through stage chain", "FROM alpine:3 AS a\nFROM a AS b\nFROM golang AS c\nFROM b\n", "", &Ref{"alpine:3", 1, "docker.io/library/alpine:3"}},
		{"target", "FROM alpine:3 AS a\nFROM golang AS c\nFROM a\n", "c", &Ref{"golang", 2, "docker.io/library/golang:latest"}},
		{"scratch", "FROM busybox AS a\nFROM scratch\nCOPY --from=a / /\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.dockerfile), Args{Target: tt.target})
			if err != nil {
				t.Fatal(err)
			}
			got := m.FinalBase()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMapBases(t *testing.T) {
	ref := func(line int, image string) Ref {
		n, err := Normalize(image)
		if err != nil {
			t.Fatal(err)
		}
		return Ref{Original: image, Line: line, Normalized: n}
	}
	bases := []Base{
		{Name: "busybox:latest", Digest: digestA},
		{Name: "docker.io/library/ubuntu:24.04"},
		{Name: "registry.example.com/base:1.0", Digest: digestB},
	}
	tests := []struct {
		name      string
		refs      []Ref
		matches   []Match
		uncovered []Ref
		warnings  []string
	}{
		{
			name: "busybox spellings all match",
			refs: []Ref{ref(1, "busybox"), ref(2, "docker.io/library/busybox:latest"), ref(3, "busybox@"+digestA), ref(4, "index.docker.io/library/busybox")},
			matches: []Match{
				{ref(1, "busybox"), 0}, {ref(2, "docker.io/library/busybox:latest"), 0},
				{ref(3, "busybox@"+digestA), 0}, {ref(4, "index.docker.io/library/busybox"), 0},
			},
		},
		{
			name:      "other tag is not substituted",
			refs:      []Ref{ref(3, "ubuntu:22.04")},
			uncovered: []Ref{ref(3, "ubuntu:22.04")},
			warnings:  []string{"Dockerfile line 3 names ubuntu:22.04, loaded base is docker.io/library/ubuntu:24.04: not substituted"},
		},
		{
			name:      "other digest is not substituted",
			refs:      []Ref{ref(1, "busybox@"+digestB)},
			uncovered: []Ref{ref(1, "busybox@"+digestB)},
			warnings:  []string{"Dockerfile line 1 names busybox@" + digestB + ", loaded base is docker.io/library/busybox:latest (" + digestA + "): not substituted"},
		},
		{
			name:    "private registry by tag and by digest",
			refs:    []Ref{ref(1, "registry.example.com/base:1.0"), ref(2, "registry.example.com/base@"+digestB)},
			matches: []Match{{ref(1, "registry.example.com/base:1.0"), 2}, {ref(2, "registry.example.com/base@"+digestB), 2}},
		},
		{
			name:      "unrelated images are uncovered without warning",
			refs:      []Ref{ref(1, "alpine:3"), ref(2, "registry.example.com/other:1.0")},
			uncovered: []Ref{ref(1, "alpine:3"), ref(2, "registry.example.com/other:1.0")},
		},
		{
			name:      "a ubuntu ref by digest does not match a base without digest",
			refs:      []Ref{ref(5, "ubuntu@"+digestA)},
			uncovered: []Ref{ref(5, "ubuntu@"+digestA)},
			warnings:  []string{"Dockerfile line 5 names ubuntu@" + digestA + ", loaded base is docker.io/library/ubuntu:24.04: not substituted"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MapBases(tt.refs, bases)
			want := Mapping{Matches: tt.matches, Uncovered: tt.uncovered, Warnings: tt.warnings}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestMapBasesDigestInBaseName(t *testing.T) {
	refs := []Ref{{Original: "busybox@" + digestA, Line: 1, Normalized: "docker.io/library/busybox@" + digestA}}
	got := MapBases(refs, []Base{{Name: "busybox@" + digestA}})
	if len(got.Matches) != 1 {
		t.Fatalf("got %+v, want one match", got)
	}
}

func FuzzExternalImages(f *testing.F) {
	seeds := []string{
		"FROM ubuntu\n",
		"ARG BASE=ubuntu:22.04\nFROM ${BASE} AS b\nFROM $BASE\nCOPY --from=b / /\n",
		"FROM golang AS build\nFROM scratch\nCOPY --from=build /a /a\nCOPY --from=alpine:3 /b /b\n",
		"FROM busybox\nRUN --mount=type=bind,from=golang:1.22,target=/g --mount=type=secret,id=x cat /run/secrets/x\n",
		"# escape=`\nFROM busybox\nRUN echo `\n  hi\n",
		"FROM busybox@" + digestA + "\nRUN <<EOF\necho hi\nEOF\n",
		"from --platform=$BUILDPLATFORM registry.example.com:5000/a/b:1 as x\nfrom x\n",
		"FROM ${X:-busybox}\nFROM scratch\n",
		"FROM\n",
		"RUN x\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), "v", "")
	}
	f.Fuzz(func(t *testing.T, dockerfile []byte, arg string, target string) {
		refs, err := images(dockerfile, map[string]string{"BASE": arg}, target)
		if err != nil {
			return
		}
		for _, r := range refs {
			if r.Line < 1 {
				t.Fatalf("ref %+v has no line", r)
			}
			again, err := Normalize(r.Normalized)
			if err != nil || again != r.Normalized {
				t.Fatalf("normalized %q is not stable: %q, %v", r.Normalized, again, err)
			}
			if _, err := name.ParseReference(r.Normalized, name.StrictValidation); err != nil {
				t.Fatalf("normalized %q is not fully qualified: %v", r.Normalized, err)
			}
		}
		MapBases(refs, []Base{{Name: "busybox", Digest: digestA}, {Name: arg}})
	})
}

// images parses a Dockerfile and returns the images its model names.
func images(dockerfile []byte, buildArgs map[string]string, target string) ([]Ref, error) {
	m, err := Parse(dockerfile, Args{BuildArgs: buildArgs, Target: target})
	if err != nil {
		return nil, err
	}
	return m.Images(), nil
}

func TestCacheMounts(t *testing.T) {
	m, err := Parse([]byte("FROM a AS a\nRUN --mount=type=cache,target=/root/.cache/pip pip install x\n"+
		"RUN --mount=type=secret,id=s --mount=type=cache,id=apt,target=/var/cache/apt,uid=0 apt-get update\n"+
		"FROM b\nRUN --mount=type=cache,target=/root/.cache/pip true\nCOPY --from=a / /\n"), Args{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{Type: "cache", ID: "/root/.cache/pip", Target: "/root/.cache/pip", Line: 2}, {Type: "cache", ID: "apt", Target: "/var/cache/apt", Line: 3}}
	if got := m.CacheMounts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if _, err := Parse([]byte("FROM a\nRUN --mount=type=cache,id=x true\n"), Args{}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a cache mount without target: %v", err)
	}
}

func TestCrossStageImages(t *testing.T) {
	dockerfile := "ARG BASE=busybox\n" +
		"FROM --platform=$BUILDPLATFORM golang:1.26 AS build\nRUN true\n" +
		"FROM --platform=$TARGETPLATFORM ${BASE} AS same\n" +
		"FROM --platform=linux/s390x alpine AS unused\n" +
		"FROM --platform=$BUILDPLATFORM build AS again\n" +
		"FROM ${BASE}\nCOPY --from=build / /\nCOPY --from=same / /\nCOPY --from=again / /\n"
	m, err := Parse([]byte(dockerfile), Args{BuildArgs: map[string]string{"BASE": "example.com/base:1"}, Platform: "linux/foreign/v8"})
	if err != nil {
		t.Fatal(err)
	}
	running := runtime.GOOS + "/" + runtime.GOARCH
	want := map[string][]Ref{running: {{"golang:1.26", 2, "docker.io/library/golang:1.26"}}}
	if got := m.CrossStageImages(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for dockerfile, want := range map[string]bool{
		"FROM --platform=$BUILDPLATFORM a AS b\nRUN make\nFROM c\nCOPY --from=b / /\n": false,
		"FROM a AS b\nRUN make\nFROM c\nCOPY x /\n":                                    false, // b is not needed
		"FROM a AS b\nRUN make\nFROM c\nCOPY --from=b / /\n":                           true,
		"FROM --platform=$TARGETPLATFORM a\nRUN make\n":                                true,
	} {
		m, err := Parse([]byte(dockerfile), Args{Platform: "linux/foreign/v8"})
		if err != nil || m.RunsOnTarget() != want {
			t.Errorf("RunsOnTarget(%q) = %v, %v; want %v", dockerfile, !want, err, want)
		}
	}
}

// TestPlatformArgs: the platform ARGs expand FROM lines as buildah expands them: TARGET* name the
// platform built for (a TARGETPLATFORM build arg does not change it), BUILD* the running one.
func TestPlatformArgs(t *testing.T) {
	running := runtime.GOOS + "/" + runtime.GOARCH
	m, err := Parse([]byte("FROM registry.example.com/${TARGETARCH}${TARGETVARIANT}:${BUILDARCH}\n"),
		Args{Platform: "linux/arm/v7", BuildArgs: map[string]string{"TARGETPLATFORM": "linux/s390x"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "registry.example.com/armv7:" + runtime.GOARCH
	if got := m.Images(); len(got) != 1 || got[0].Original != want || m.Platform != "linux/arm/v7" {
		t.Errorf("images %+v, platform %s; want %s, linux/arm/v7", got, m.Platform, want)
	}
	if m, err = Parse([]byte("FROM busybox\n"), Args{}); err != nil || m.Platform != running {
		t.Errorf("platform %v, %v; want %s", m.Platform, err, running)
	}
}

// TestEvaluateStartsAfresh: each evaluation gets stages of its own, so reading the model (as Parse
// does) and computing keys from it (as pkg/cachekey does) see the same Dockerfile.
func TestEvaluateStartsAfresh(t *testing.T) {
	m, err := Parse([]byte("ARG A=1\nFROM busybox AS b\nRUN true\nFROM b\nCOPY x /\n"), Args{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		stages, err := m.Evaluate()
		if err != nil {
			t.Fatal(err)
		}
		if len(stages) != 2 || len(stages[0].Node.Children) != 2 || stages[1].Name != "1" {
			t.Fatalf("stages %+v", stages)
		}
		if _, err := stages[0].Builder.From(stages[0].Node); err != nil { // changes its node
			t.Fatal(err)
		}
	}
}
