package dockerfile

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// Base is an image already loaded (from a Concourse get).
type Base struct {
	// Name is repository[:tag] as saved, e.g. registry.example.com/base:1.0
	// (no tag = latest).
	Name string
	// Digest is the manifest digest sha256:...; may be "".
	Digest string
}

// Match says that a Ref is served by a loaded base.
type Match struct {
	Ref  Ref
	Base int // index into the bases given to MapBases
}

// Mapping is the outcome of MapBases.
type Mapping struct {
	Matches   []Match
	Uncovered []Ref    // refs no base serves: they will be pulled
	Warnings  []string // same repository as a base but another tag or digest
}

// MapBases matches refs to loaded bases. A ref matches a base when their
// normalized repositories are equal and either their tags are equal or the
// ref's digest is the base's digest. A ref to a base's repository that does
// not match (another tag or digest) stays uncovered and gets a warning.
func MapBases(refs []Ref, bases []Base) Mapping {
	parsed := make([]parsedBase, len(bases))
	for i, b := range bases {
		parsed[i] = parseBase(b)
	}
	var m Mapping
	for _, ref := range refs {
		r, err := name.ParseReference(ref.Normalized)
		if err != nil {
			m.Uncovered = append(m.Uncovered, ref)
			continue
		}
		repo := repository(r.Context())
		matched, sameRepo := -1, -1
		for i, b := range parsed {
			if !b.ok || b.repo != repo {
				continue
			}
			if sameRepo < 0 {
				sameRepo = i
			}
			if b.matches(r) {
				matched = i
				break
			}
		}
		switch {
		case matched >= 0:
			m.Matches = append(m.Matches, Match{Ref: ref, Base: matched})
		case sameRepo >= 0:
			m.Uncovered = append(m.Uncovered, ref)
			m.Warnings = append(m.Warnings, fmt.Sprintf("Dockerfile line %d names %s, loaded base is %s: not substituted",
				ref.Line, ref.Original, parsed[sameRepo].describe(isDigest(r))))
		default:
			m.Uncovered = append(m.Uncovered, ref)
		}
	}
	return m
}

// parsedBase is a Base with its name normalized.
type parsedBase struct {
	ok     bool // the name parsed
	repo   string
	tag    string // "" when the name has a digest instead
	digest string
}

func parseBase(b Base) parsedBase {
	r, err := name.ParseReference(b.Name)
	if err != nil {
		return parsedBase{}
	}
	p := parsedBase{ok: true, repo: repository(r.Context()), digest: b.Digest}
	switch r := r.(type) {
	case name.Tag:
		p.tag = r.TagStr()
	case name.Digest:
		if p.digest == "" {
			p.digest = r.DigestStr()
		}
	}
	return p
}

func (b parsedBase) matches(r name.Reference) bool {
	switch r := r.(type) {
	case name.Tag:
		return b.tag != "" && r.TagStr() == b.tag
	case name.Digest:
		return b.digest != "" && r.DigestStr() == b.digest
	}
	return false
}

// describe names the base; with its digest when the ref names a digest.
func (b parsedBase) describe(withDigest bool) string {
	s := b.repo
	if b.tag != "" {
		s += ":" + b.tag
	}
	if withDigest && b.digest != "" {
		s += " (" + b.digest + ")"
	}
	return s
}

func isDigest(r name.Reference) bool {
	_, ok := r.(name.Digest)
	return ok
}
