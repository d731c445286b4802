package tags

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tag", "1.4.2\n")
	write("more", " a\tb\n\nc ")
	write("empty", "\n")
	write("bad", "no/slash")
	write("long", "ok "+strings.Repeat("/", 129))
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "bad"), []byte("x/secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "tag"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "tag"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	existing := func() ([]string, error) { return []string{"1.4.1", "1.5.0", "latest", "0.9.0"}, nil }
	cases := []struct {
		name    string
		p       Params
		want    []string
		wantErr string
	}{
		{"default", Params{}, []string{"latest"}, ""},
		{"source tag", Params{DefaultTag: "edge"}, []string{"edge"}, ""},
		{"tag file with prefix, latest, additional", Params{TagFile: "tag", TagPrefix: "v", TagAsLatest: true, AdditionalTags: "more"}, []string{"v1.4.2", "latest", "a", "b", "c"}, ""},
		{"version aliases: newest of 1.4 only", Params{Version: "1.4.2", BumpAliases: true}, []string{"1.4.2", "1.4"}, ""},
		{"version aliases: newest overall", Params{Version: "1.6.0", BumpAliases: true}, []string{"1.6.0", "1.6", "1", "latest"}, ""},
		{"version with variant", Params{Version: "2.0.0", Variant: "alpine", BumpAliases: true}, []string{"2.0.0-alpine", "2.0-alpine", "2-alpine", "alpine"}, ""},
		{"pre-release moves no alias", Params{Version: "2.0.0-rc.1", BumpAliases: true}, []string{"2.0.0-rc.1"}, ""},
		{"empty tag file", Params{TagFile: "empty"}, nil, "params.tag_file: empty is empty, expected a tag"},
		{"missing tag file", Params{TagFile: "nope"}, nil, "params.tag_file: nope: no such file or directory"},
		{"invalid tag", Params{TagFile: "bad"}, nil, `params.tag_file: bad holds "no/slash"`},
		{"long invalid tag is not quoted", Params{TagFile: "long"}, nil, "params.tag_file: long holds an invalid tag (word 2, 129 bytes)"},
		{"invalid tag outside is not quoted", Params{AdditionalTags: filepath.Join(outside, "bad")}, nil, "params.additional_tags: " + filepath.Join(outside, "bad") + " holds an invalid tag (word 1, 8 bytes)"},
		{"absolute tag file outside", Params{TagFile: filepath.Join(outside, "tag")}, []string{"outside"}, ""},
		{"symlink out", Params{TagFile: "link"}, nil, "params.tag_file: link: resolves outside the work dir"},
		{"too long with the prefix", Params{TagFile: "tag", TagPrefix: strings.Repeat("v", 124)}, nil, "params.tag_prefix: " + `"` + strings.Repeat("v", 124) + `" with the tag file's tag makes 129 characters`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Resolve(dir, c.p, existing)
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("got %v, want %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error %q quotes a file outside the volume", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v %v, want %v", got, err, c.want)
			}
		})
	}
}

func FuzzReadTags(f *testing.F) {
	f.Add("1.2.3\n")
	f.Add(" a b\tc\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tags, err := readTags(dir, "f", "params.tag_file")
		if err == nil && len(tags) == 0 {
			t.Fatal("no error and no tag")
		}
	})
}
