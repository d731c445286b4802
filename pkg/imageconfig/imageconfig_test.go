package imageconfig

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestWithLabelsKeepsLayersAndOtherFields(t *testing.T) {
	img, err := random.Image(64, 2)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"A=1"}, Labels: map[string]string{"keep": "k", "over": "old"}})
	if err != nil {
		t.Fatal(err)
	}
	same, replaced, err := WithLabels(img, nil, nil)
	if err != nil || same != img || replaced != nil {
		t.Fatalf("no change: got a new image or %v %v", replaced, err)
	}

	out, replaced, err := WithLabels(img, map[string]string{"over": "new", "added": "a"}, []string{"gone", "keep"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := out.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := out.ConfigName(); m.Config.Digest != name {
		t.Errorf("manifest names config %s, config is %s", m.Config.Digest, name)
	}
	if len(replaced) != 1 || replaced["over"] != "old" {
		t.Errorf("replaced = %v", replaced)
	}
	cfg, err := out.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Labels; len(got) != 2 || got["over"] != "new" || got["added"] != "a" {
		t.Errorf("labels = %v", got)
	}
	if len(cfg.Config.Env) != 1 || cfg.Config.Env[0] != "A=1" {
		t.Errorf("env = %v", cfg.Config.Env)
	}
	before, _ := img.Manifest()
	after, _ := out.Manifest()
	for i := range before.Layers {
		if before.Layers[i].Digest != after.Layers[i].Digest {
			t.Errorf("layer %d changed", i)
		}
	}
	if before.Config.Digest == after.Config.Digest {
		t.Error("config digest unchanged")
	}
}
