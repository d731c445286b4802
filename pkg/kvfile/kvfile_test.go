package kvfile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

func TestParse(t *testing.T) {
	want := map[string]string{"VERSION": "1.2", "NAME": "app", "FLAG": "true"}
	cases := map[string]string{
		"json":      `{"VERSION": "1.2", "NAME": "app", "FLAG": true}`,
		"yaml":      "VERSION: \"1.2\"\nNAME: app\nFLAG: true\n",
		"key=value": "# comment\nVERSION=1.2\n\nNAME=\"app\"\nFLAG=true\n",
	}
	for format, text := range cases {
		t.Run(format, func(t *testing.T) {
			got, err := Parse([]byte(text))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v %v, want %v", got, err, want)
			}
		})
	}
	if got, err := Parse([]byte("URL=http://x:1/a=b")); err != nil || got["URL"] != "http://x:1/a=b" {
		t.Fatalf("a value with ':' and '=': %v %v", got, err)
	}
	for _, bad := range []string{"{not json", "- a\n- b\n", "KEY: [1, 2]"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{`{"A":"1"}`, "A: 1\n", "A=1\n#c\nB='2'\n", "", "- x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if m, err := Parse([]byte(text)); err == nil && m == nil {
			t.Fatal("nil map without error")
		}
	})
}

// TestReadQuotesOnlyInside: parse errors quote a key or the YAML parser's words for a file in the
// work dir, never for one read through an absolute path elsewhere; symlinks out are refused.
func TestReadQuotesOnlyInside(t *testing.T) {
	work, outside := t.TempDir(), t.TempDir()
	for dir, files := range map[string]map[string]string{
		work:    {"keys.yml": "Secret1: [a, b]\n", "anchor.yml": "key: *Secret2\n", "ok.env": "A=1\n"},
		outside: {"keys.yml": "Secret1: [a, b]\n", "anchor.yml": "key: *Secret2\n"},
	} {
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink(filepath.Join(outside, "keys.yml"), filepath.Join(work, "link.yml")); err != nil {
		t.Fatal(err)
	}
	v := volume.New(work)
	cases := []struct{ name, want string }{
		{"keys.yml", "params.labels_file: keys.yml: Secret1: expected a string, number or boolean value"},
		{"anchor.yml", "params.labels_file: anchor.yml: expected a YAML mapping or KEY=VALUE lines: yaml: unknown anchor 'Secret2' referenced"},
		{filepath.Join(outside, "keys.yml"), "params.labels_file: " + filepath.Join(outside, "keys.yml") + ": expected a string, number or boolean value for every key"},
		{filepath.Join(outside, "anchor.yml"), "params.labels_file: " + filepath.Join(outside, "anchor.yml") + ": expected a YAML mapping or KEY=VALUE lines"},
		{"link.yml", "params.labels_file: link.yml: resolves outside the work dir"},
	}
	for _, c := range cases {
		_, err := Read(v, "params.labels_file", c.name)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
			continue
		}
		if strings.HasPrefix(c.name, "/") && strings.Contains(err.Error(), "Secret") {
			t.Errorf("%s: %q quotes a file outside the volume", c.name, err)
		}
	}
	if got, err := Read(v, "params.labels_file", "ok.env"); err != nil || got["A"] != "1" {
		t.Errorf("ok.env: %v %v", got, err)
	}
}
