package cachekey

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Label is the image config label holding a build's Record as compact JSON.
const Label = "io.buildah-image-resource.cache.v1"

// MaxFiles caps the files listed per step in a record; beyond it only each source's hash is kept
// and a miss says "files under <source> changed".
const MaxFiles = 100

// Record is what an image remembers of the keys it was built with: enough to decide hits from
// its config alone and to say why a later build misses.
type Record struct {
	Version  int           `json:"v"`
	Platform string        `json:"platform"`
	Format   string        `json:"format"`
	Squash   bool          `json:"squash,omitempty"`
	Stages   []RecordStage `json:"stages"`
	// Labels are the labels laid over the built config (params and base labels): name -> short
	// hash of the value. Replaced holds the values they replaced, to undo them.
	Labels   map[string]string `json:"labels,omitempty"`
	Replaced map[string]string `json:"replaced,omitempty"`
}

// RecordStage is one stage of a Record.
type RecordStage struct {
	Name  string       `json:"name"`
	Base  string       `json:"base"`
	Steps []RecordStep `json:"steps"`
}

// RecordStep is one instruction of a RecordStage.
type RecordStep struct {
	Key         string            `json:"k"`
	Instruction string            `json:"i"`
	Args        map[string]string `json:"a,omitempty"`
	Files       map[string]string `json:"f,omitempty"` // absent when over MaxFiles
	Sources     map[string]string `json:"s,omitempty"`
	Layer       bool              `json:"l,omitempty"`
}

// NewRecord is the record of a plan.
func NewRecord(p *Plan) *Record {
	r := &Record{Version: Version, Platform: p.Platform, Format: p.Format, Squash: p.Squash}
	for _, s := range p.Stages {
		rs := RecordStage{Name: s.Name, Base: s.Base}
		for _, st := range s.Steps {
			step := RecordStep{Key: st.Key, Instruction: st.Instruction, Args: st.Args, Sources: st.Sources, Layer: st.Layer}
			if len(st.Files) <= MaxFiles {
				step.Files = st.Files
			}
			rs.Steps = append(rs.Steps, step)
		}
		r.Stages = append(r.Stages, rs)
	}
	return r
}

// Encode is the label value.
func (r *Record) Encode() (string, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encoding cache record: %w", err)
	}
	return string(data), nil
}

// Decode reads a label value.
func Decode(value string) (*Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(value), &r); err != nil {
		return nil, fmt.Errorf("decoding cache record: %w", err)
	}
	return &r, nil
}

// Final is the record of the target stage, nil when there is none.
func (r *Record) Final() *RecordStage {
	if len(r.Stages) == 0 {
		return nil
	}
	return &r.Stages[len(r.Stages)-1]
}

// stage finds a stage by name.
func (r *Record) stage(name string) *RecordStage {
	i := slices.IndexFunc(r.Stages, func(s RecordStage) bool { return s.Name == name })
	if i < 0 {
		return nil
	}
	return &r.Stages[i]
}

// SetLabels records the labels laid over the config and the values they replaced.
func (r *Record) SetLabels(labels, replaced map[string]string) {
	r.Labels = shortHashes(labels)
	r.Replaced = maps.Clone(replaced)
	if len(r.Replaced) == 0 {
		r.Replaced = nil
	}
}

// LabelsMatch says the labels are the ones recorded.
func (r *Record) LabelsMatch(labels map[string]string) bool {
	return maps.Equal(shortHashes(labels), r.Labels)
}
