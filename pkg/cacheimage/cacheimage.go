// Package cacheimage picks, among earlier images of a build (cache images), the one the build can
// reuse most of, reports per step what hits and why anything misses, and makes the images a put
// pushes when every step hits. It reads only manifests and configs: deciding needs no layer.
package cacheimage

import (
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/cachekey"
	"github.com/imagesmith/buildah-image-resource/pkg/imageconfig"
)

// Source is one place a cache image may be.
type Source struct {
	Name string // as the put names it: a reference or a get directory
	// Open reads the image's manifest and config, not its layers; it returns nil, nil when
	// there is no image there.
	Open func() (*Image, error)
}

// Image is an opened cache image.
type Image struct {
	Image v1.Image
	// Ref is the registry reference the image was read from, "" for a file: layers of another
	// repository of the registry pushed to are mounted from it.
	Ref string
}

// Candidate is a cache image compared with the build.
type Candidate struct {
	Source string
	Image  *Image
	Record *cachekey.Record
	Match  cachekey.Match
}

// Choose opens the sources in order and compares each usable one with the plan's target stage:
// the first that hits every step wins at once, else the one with the most hits (the first of
// equals). Unusable sources are reported through warn with the reason. labels are the labels
// the build lays over its config; ttl, when not 0, refuses images created longer ago.
func Choose(plan *cachekey.Plan, labels map[string]string, sources []Source, ttl time.Duration, warn func(format string, args ...any)) *Candidate {
	var best *Candidate
	for _, src := range sources {
		c, reason := open(plan, labels, src, ttl)
		if reason != "" {
			warn("cache: %s: %s", src.Name, reason)
			continue
		}
		if best == nil || c.Match.Hits > best.Match.Hits {
			best = c
		}
		if c.Match.AllHit() {
			break
		}
	}
	return best
}

// open reads one source and says why it cannot serve, if it cannot.
func open(plan *cachekey.Plan, labels map[string]string, src Source, ttl time.Duration) (*Candidate, string) {
	img, err := src.Open()
	switch {
	case err != nil:
		return nil, "not usable: " + oneLine(err.Error())
	case img == nil:
		return nil, "no image there, building without it"
	}
	cfg, err := img.Image.ConfigFile()
	if err != nil {
		return nil, "not usable: " + oneLine(err.Error())
	}
	value, ok := cfg.Config.Labels[cachekey.Label]
	if !ok {
		return nil, "unusable: the image was built by another tool" + otherTool(cfg)
	}
	rec, err := cachekey.Decode(value)
	if err != nil {
		return nil, "unusable: " + err.Error()
	}
	if age := time.Since(cfg.Created.Time); ttl > 0 && age > ttl {
		return nil, fmt.Sprintf("unusable: built %s ago, cache_ttl is %s", age.Round(time.Minute), ttl)
	}
	m := cachekey.Compare(plan, rec, labels)
	if m.Unusable != "" {
		return nil, "unusable: " + m.Unusable
	}
	if rec.Squash && !m.AllHit() {
		return nil, "unusable: a squashed image serves only when every step hits"
	}
	return &Candidate{Source: src.Name, Image: img, Record: rec, Match: m}, ""
}

// otherTool names the builder its history shows, when it shows one.
func otherTool(cfg *v1.ConfigFile) string {
	for _, h := range cfg.History {
		if strings.HasPrefix(h.Comment, "buildkit.dockerfile") {
			return " (BuildKit), with no " + cachekey.Label + " label"
		}
	}
	return " (no " + cachekey.Label + " label)"
}

// Report writes one line per step of the plan's target stage, numbered as buildah numbers its
// steps: "STEP 4/9: COPY src /app — cache hit (from registry.example.com/app:latest)"; with no
// usable cache image, one line saying so.
func Report(w io.Writer, plan *cachekey.Plan, c *Candidate) {
	final := plan.Final()
	if c == nil {
		fmt.Fprintf(w, "cache: no usable cache image: the %d steps run\n", len(final.Steps))
		return
	}
	prefix := ""
	if n := final.Position + 1; n > 1 {
		prefix = fmt.Sprintf("[%d/%d] ", n, n)
	}
	for i, step := range final.Steps {
		verdict := "cache hit (from " + c.Source + ")"
		if !c.Match.Steps[i].Hit {
			verdict = "cache miss: " + c.Match.Steps[i].Reason
		}
		fmt.Fprintf(w, "%sSTEP %d/%d: %s — %s\n", prefix, i+1, len(final.Steps), step.Instruction, verdict)
	}
}

// Summary is the metadata of the cache's effect.
func Summary(plan *cachekey.Plan, c *Candidate) (hits, firstMiss string) {
	final := plan.Final()
	if c == nil {
		return fmt.Sprintf("0/%d", len(final.Steps)), "no cache image"
	}
	hits = fmt.Sprintf("%d/%d", c.Match.Hits, len(final.Steps))
	if i := c.Match.FirstMiss; i < len(final.Steps) {
		firstMiss = fmt.Sprintf("STEP %d/%d: %s — %s", i+1, len(final.Steps), final.Steps[i].Instruction, c.Match.Steps[i].Reason)
	}
	return hits, firstMiss
}

// Stamp records the build's keys in its image: rec, with the labels the build laid over the
// config (and the values they replaced), as the cachekey.Label label.
func Stamp(img v1.Image, rec *cachekey.Record, labels, replaced map[string]string) (v1.Image, error) {
	rec.SetLabels(labels, replaced)
	value, err := rec.Encode()
	if err != nil {
		return nil, err
	}
	out, _, err := imageconfig.WithLabels(img, map[string]string{cachekey.Label: value}, nil)
	if err != nil {
		return nil, fmt.Errorf("recording cache keys: %w", err)
	}
	return out, nil
}

// Reuse is the image a put pushes when every step hits: the cache image itself when the labels
// are the recorded ones, else a new config over the same layers, with the recorded labels undone,
// the build's laid over and rec stamped.
func Reuse(c *Candidate, labels map[string]string, rec *cachekey.Record) (v1.Image, error) {
	if c.Record.LabelsMatch(labels) {
		return c.Image.Image, nil
	}
	var unset []string
	for k := range c.Record.Labels {
		if _, restored := c.Record.Replaced[k]; !restored {
			unset = append(unset, k)
		}
	}
	img, _, err := imageconfig.WithLabels(c.Image.Image, c.Record.Replaced, unset)
	if err != nil {
		return nil, err
	}
	img, replaced, err := imageconfig.WithLabels(img, labels, nil)
	if err != nil {
		return nil, err
	}
	return Stamp(img, rec, labels, replaced)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
