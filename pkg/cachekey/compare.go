package cachekey

import (
	"fmt"
	"slices"
	"strings"
)

// Verdict says whether one instruction of the target stage hits, and why not when it misses.
type Verdict struct {
	Hit    bool
	Reason string // for a miss: "src/main.go changed", "build arg VERSION changed", ...
}

// Match is a plan's target stage compared with a record.
type Match struct {
	// Unusable says why the record can serve no step at all; "" when it can.
	Unusable string
	Steps    []Verdict // one per step of the target stage, FROM first
	Hits     int       // leading steps that hit
	// FirstMiss is the index of the first missing step, len(Steps) when all hit.
	FirstMiss int
	// LabelsDiffer says the labels laid over the config (params, base) are not the recorded ones.
	LabelsDiffer bool
}

// AllHit says every step hits.
func (m Match) AllHit() bool { return m.Unusable == "" && m.Hits == len(m.Steps) }

// Compare matches the plan's target stage against a record, step by step. labels are the labels
// the build lays over the config.
func Compare(p *Plan, r *Record, labels map[string]string) Match {
	final := p.Final()
	m := Match{Steps: make([]Verdict, len(final.Steps))}
	if m.Unusable = unusable(p, r); m.Unusable != "" {
		for i := range m.Steps {
			m.Steps[i].Reason = m.Unusable
		}
		return m
	}
	old := r.Final()
	m.LabelsDiffer = !r.LabelsMatch(labels)
	m.FirstMiss = len(final.Steps)
	for i, step := range final.Steps {
		if i < len(old.Steps) && old.Steps[i].Key == step.Key && step.Volatile == "" {
			m.Steps[i].Hit = true
			m.Hits++
			continue
		}
		m.FirstMiss = i
		m.Steps[i].Reason = missReason(p, r, final, old, i)
		for j := i + 1; j < len(m.Steps); j++ {
			m.Steps[j].Reason = fmt.Sprintf("follows the miss at step %d", i+1)
		}
		break
	}
	return m
}

// unusable says why a record cannot serve the plan at all.
func unusable(p *Plan, r *Record) string {
	switch {
	case r.Version != Version:
		return fmt.Sprintf("cache image has cache keys of version %d, not %d", r.Version, Version)
	case r.Final() == nil:
		return "cache image records no stage"
	case r.Platform != p.Platform:
		return fmt.Sprintf("cache image is for %s, the build is for %s", r.Platform, p.Platform)
	case r.Format != p.Format:
		return fmt.Sprintf("cache image has %s manifests, the build makes %s", r.Format, p.Format)
	}
	return ""
}

// missReason explains why step i of the target stage misses when all before it hit.
func missReason(p *Plan, r *Record, s *Stage, old *RecordStage, i int) string {
	step := s.Steps[i]
	if step.Volatile != "" {
		return step.Volatile
	}
	if i >= len(old.Steps) {
		return "new instruction"
	}
	was := old.Steps[i]
	if i == 0 {
		switch {
		case r.Squash != p.Squash:
			return fmt.Sprintf("squash changed to %t", p.Squash)
		case was.Instruction != step.Instruction && s.Base == old.Base:
			return fmt.Sprintf("instruction changed (was %q)", was.Instruction)
		case s.Base != old.Base && !strings.HasPrefix(s.Base, "stage "):
			return "base image changed (was " + old.Base + ")"
		}
	}
	if was.Instruction != step.Instruction {
		return fmt.Sprintf("instruction changed (was %q)", was.Instruction)
	}
	if changed := changedKeys(step.Args, was.Args); len(changed) > 0 {
		return plural("build arg", changed) + " changed"
	}
	if reason := filesReason(step, was); reason != "" {
		return reason
	}
	if reason := readsReason(p, r, step); reason != "" {
		return reason
	}
	return "its inputs changed"
}

// filesReason names the context files that differ, or the sources when a list was capped.
func filesReason(step Step, was RecordStep) string {
	if was.Files != nil || len(was.Sources) == 0 {
		var parts []string
		for _, kind := range []struct {
			what string
			keys []string
		}{
			{"changed", changedValues(step.Files, was.Files)},
			{"added", missingFrom(step.Files, was.Files)},
			{"removed", missingFrom(was.Files, step.Files)},
		} {
			if len(kind.keys) > 0 {
				parts = append(parts, listed(kind.keys)+" "+kind.what)
			}
		}
		return strings.Join(parts, ", ")
	}
	var sources []string
	for _, src := range changedKeys(step.Sources, was.Sources) {
		sources = append(sources, "files under "+src)
	}
	if len(sources) > 0 {
		return strings.Join(sources, ", ") + " changed"
	}
	return ""
}

// readsReason names the stages the step reads whose keys changed, or the images.
func readsReason(p *Plan, r *Record, step Step) string {
	var changed []string
	for _, what := range step.Reads {
		name, isStage := strings.CutPrefix(what, "stage ")
		if !isStage {
			changed = append(changed, "image "+what)
			continue
		}
		now, before := p.stage(name), r.stage(name)
		if now == nil || before == nil || now.Steps[len(now.Steps)-1].Key != before.Steps[len(before.Steps)-1].Key {
			changed = append(changed, "stage "+name)
		}
	}
	if len(changed) == 0 {
		return ""
	}
	return strings.Join(changed, ", ") + " changed"
}

func (p *Plan) stage(name string) *Stage {
	i := slices.IndexFunc(p.Stages, func(s *Stage) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return p.Stages[i]
}

// changedKeys lists the keys whose values differ, including keys only one side has.
func changedKeys(a, b map[string]string) []string {
	var keys []string
	for k := range a {
		if b[k] != a[k] || !has(b, k) {
			keys = append(keys, k)
		}
	}
	for k := range b {
		if !has(a, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// changedValues lists the keys both have with different values.
func changedValues(now map[string]string, before map[string]string) []string {
	var keys []string
	for k, v := range now {
		if old, ok := before[k]; ok && old != v {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func missingFrom(a, b map[string]string) []string {
	var keys []string
	for k := range a {
		if !has(b, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func has(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// listed names up to three items: "a, b, c and 4 more".
func listed(items []string) string {
	if len(items) <= 3 {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:3], ", "), len(items)-3)
}

func plural(what string, items []string) string {
	if len(items) == 1 {
		return what + " " + items[0]
	}
	return what + "s " + listed(items)
}
