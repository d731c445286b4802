package kvfile

import (
	"reflect"
	"testing"
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
