// Package imageconfig changes the labels of an image's config without touching its layers:
// the result lists the same layer descriptors, so pushing it uploads nothing but the new config
// and manifest. The config is edited as JSON, keeping every field it does not change.
package imageconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// WithLabels returns img with the labels in set set and those in unset removed. replaced holds
// the values that set overwrote. With nothing to change it returns img itself.
func WithLabels(img v1.Image, set map[string]string, unset []string) (_ v1.Image, replaced map[string]string, err error) {
	if len(set) == 0 && len(unset) == 0 {
		return img, nil, nil
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("reading image config: %w", err)
	}
	config, replaced, err := editLabels(raw, set, unset)
	if err != nil {
		return nil, nil, err
	}
	return &relabeled{Image: img, config: config}, replaced, nil
}

// Labels reads an image's labels.
func Labels(img v1.Image) (map[string]string, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	return cfg.Config.Labels, nil
}

// editLabels edits config.Labels of a raw config.
func editLabels(raw []byte, set map[string]string, unset []string) ([]byte, map[string]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, nil, fmt.Errorf("parsing image config: %w", err)
	}
	container := map[string]json.RawMessage{}
	if c, ok := top["config"]; ok && !bytes.Equal(c, []byte("null")) {
		if err := json.Unmarshal(c, &container); err != nil {
			return nil, nil, fmt.Errorf("parsing image config: %w", err)
		}
	}
	labels := map[string]string{}
	if l, ok := container["Labels"]; ok && !bytes.Equal(l, []byte("null")) {
		if err := json.Unmarshal(l, &labels); err != nil {
			return nil, nil, fmt.Errorf("parsing image config labels: %w", err)
		}
	}
	replaced := map[string]string{}
	for _, k := range unset {
		delete(labels, k)
	}
	for k, v := range set {
		if old, ok := labels[k]; ok && old != v {
			replaced[k] = old
		}
	}
	maps.Copy(labels, set)
	var err error
	if container["Labels"], err = json.Marshal(labels); err != nil {
		return nil, nil, err
	}
	if top["config"], err = json.Marshal(container); err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(top)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding image config: %w", err)
	}
	return out, replaced, nil
}

// relabeled is an image with another config; layers and media type are the original's.
type relabeled struct {
	v1.Image
	config []byte

	once     sync.Once
	manifest []byte
	err      error
}

func (r *relabeled) RawConfigFile() ([]byte, error) { return r.config, nil }

func (r *relabeled) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(r.config))
}

func (r *relabeled) ConfigName() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(r.config))
	return h, err
}

// RawManifest is the original manifest with the config descriptor replaced.
func (r *relabeled) RawManifest() ([]byte, error) {
	r.once.Do(func() { r.manifest, r.err = r.computeManifest() })
	return r.manifest, r.err
}

func (r *relabeled) computeManifest() ([]byte, error) {
	raw, err := r.Image.RawManifest()
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	var desc v1.Descriptor
	if err := json.Unmarshal(m["config"], &desc); err != nil {
		return nil, fmt.Errorf("parsing manifest config descriptor: %w", err)
	}
	if desc.Digest, err = r.ConfigName(); err != nil {
		return nil, err
	}
	desc.Size = int64(len(r.config))
	if m["config"], err = json.Marshal(desc); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

func (r *relabeled) Manifest() (*v1.Manifest, error) { return partial.Manifest(r) }
func (r *relabeled) Digest() (v1.Hash, error)        { return partial.Digest(r) }
func (r *relabeled) Size() (int64, error)            { return partial.Size(r) }
