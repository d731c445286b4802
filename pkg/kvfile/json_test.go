package kvfile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// TestJSONIsJSONOnly: a file starting with '{' is read as JSON, as docker-image-resource read
// build_args_file and labels_file with jq: its malformed fixture "{foo}" fails (YAML would read it
// as foo: null), while numbers and booleans of its README example become text.
func TestJSONIsJSONOnly(t *testing.T) {
	for _, bad := range []string{"{foo}", "{a: b}", `{"a": "b"} {"c": "d"}`} {
		if got, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q: got %v, want an error", bad, got)
		}
	}
	got, err := Parse([]byte(`{ "EMAIL": "me@yopmail.com", "HOW_MANY_THINGS": 1, "DO_THING": false }`))
	want := map[string]string{"EMAIL": "me@yopmail.com", "HOW_MANY_THINGS": "1", "DO_THING": "false"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
}

// TestJSONErrorThroughRead: the refusal reads in one line naming the param, the file and why.
func TestJSONErrorThroughRead(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "build_args_malformed"), []byte("{foo}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Read(volume.New(dir), "params.build_args_file", "build_args_malformed")
	want := "params.build_args_file: build_args_malformed: expected a JSON object: not valid JSON at byte 2"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}
