package cacheimage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/imagesmith/buildah-image-resource/pkg/cachekey"
	"github.com/imagesmith/buildah-image-resource/pkg/dockerfile"
	"github.com/imagesmith/buildah-image-resource/pkg/imageconfig"
)

const dockerfileText = "FROM registry.example.com/base:1\nCOPY a /a\nRUN make\n"

func newPlan(t *testing.T, content string) *cachekey.Plan {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	model, err := dockerfile.Parse([]byte(dockerfileText), dockerfile.Args{Platform: "linux/amd64"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := cachekey.NewPlan(cachekey.Input{
		Model: model, ContextDir: dir, Format: "oci",
		Images: map[string]cachekey.Image{"registry.example.com/base:1": {ID: "sha256:base"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// built is an image stamped with the plan's record and labels, created at created.
func built(t *testing.T, p *cachekey.Plan, labels map[string]string, created time.Time) v1.Image {
	t.Helper()
	img, err := random.Image(32, 3)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Labels: map[string]string{"from.dockerfile": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: created}); err != nil {
		t.Fatal(err)
	}
	// As a build does: labels laid over the config, then the keys stamped.
	img, replaced, err := imageconfig.WithLabels(img, labels, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = Stamp(img, cachekey.NewRecord(p), labels, replaced); err != nil {
		t.Fatal(err)
	}
	return img
}

func source(name string, img v1.Image, err error) Source {
	return Source{Name: name, Open: func() (*Image, error) {
		if img == nil {
			return nil, err
		}
		return &Image{Image: img, Ref: name}, nil
	}}
}

func TestChooseTakesTheFirstFullHitAndReportsTheRest(t *testing.T) {
	p := newPlan(t, "a")
	stale := built(t, newPlan(t, "old a"), nil, time.Now())
	good := built(t, p, nil, time.Now())
	old := built(t, p, nil, time.Now().Add(-48*time.Hour))
	plain, _ := random.Image(32, 1)
	var warnings []string
	warn := func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }

	c := Choose(p, nil, []Source{
		source("missing", nil, nil), source("broken", nil, errors.New("boom\nagain")), source("plain", plain, nil),
		source("old", old, nil), source("stale", stale, nil), source("good", good, nil), source("never read", nil, errors.New("read")),
	}, 24*time.Hour, warn)
	if c == nil || c.Source != "good" || !c.Match.AllHit() {
		t.Fatalf("chose %+v", c)
	}
	want := []string{
		"cache: missing: no image there, building without it",
		"cache: broken: not usable: boom again",
		"cache: plain: unusable: the image was built by another tool (no " + cachekey.Label + " label)",
		"cache: old: unusable: built 48h0m0s ago, cache_ttl is 24h0m0s",
	}
	if strings.Join(warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}

	// Without a full hit, the most hits win.
	c = Choose(p, nil, []Source{source("stale", stale, nil)}, 0, warn)
	if c == nil || c.Match.Hits != 1 {
		t.Fatalf("chose %+v", c)
	}
	var out bytes.Buffer
	Report(&out, p, c)
	wantReport := "STEP 1/3: FROM registry.example.com/base:1 — cache hit (from stale)\n" +
		"STEP 2/3: COPY a /a — cache miss: a changed\n" +
		"STEP 3/3: RUN make — cache miss: follows the miss at step 2\n"
	if out.String() != wantReport {
		t.Errorf("report:\n%s\nwant\n%s", out.String(), wantReport)
	}
	if hits, miss := Summary(p, c); hits != "1/3" || miss != "STEP 2/3: COPY a /a — a changed" {
		t.Errorf("summary %q %q", hits, miss)
	}
}

func TestReuseLaysTheNewLabelsOverTheSameLayers(t *testing.T) {
	p := newPlan(t, "a")
	cached := built(t, p, map[string]string{"team": "a", "from.dockerfile": "param"}, time.Now())
	c := Choose(p, map[string]string{"team": "a", "from.dockerfile": "param"}, []Source{source("c", cached, nil)}, 0, t.Logf)
	if same, err := Reuse(c, map[string]string{"team": "a", "from.dockerfile": "param"}, cachekey.NewRecord(p)); err != nil || same != cached {
		t.Fatalf("same labels: a new image (%v)", err)
	}

	img, err := Reuse(c, map[string]string{"commit": "abc"}, cachekey.NewRecord(p))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	labels := cfg.Config.Labels
	if labels["commit"] != "abc" || labels["from.dockerfile"] != "x" || labels["team"] != "" {
		t.Errorf("labels %v: want commit set, team gone, from.dockerfile restored", labels)
	}
	rec, err := cachekey.Decode(labels[cachekey.Label])
	if err != nil || len(rec.Labels) != 1 || rec.Labels["commit"] == "" {
		t.Errorf("record labels %v (%v)", rec, err)
	}
	before, _ := cached.Manifest()
	after, _ := img.Manifest()
	for i := range before.Layers {
		if before.Layers[i].Digest != after.Layers[i].Digest {
			t.Errorf("layer %d changed", i)
		}
	}
}
