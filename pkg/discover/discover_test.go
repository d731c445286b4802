package discover

import (
	"reflect"
	"testing"
)

func TestTags(t *testing.T) {
	all := []string{"latest", "1.10.0", "1.2.0", "1.9.3", "1.9", "1", "2.0.0-rc.1", "2.0.0", "1.9.3-alpine", "2.0.0-alpine", "v3.0.0", "main-abc"}
	cases := []struct {
		name  string
		rules Rules
		want  []string
	}{
		{"all releases, in version order", Rules{SemverConstraint: ">= 0"}, []string{"1.2.0", "1.9.3", "1.10.0", "2.0.0", "v3.0.0"}},
		{"constraint", Rules{SemverConstraint: "~1.9"}, []string{"1.9.3"}},
		{"pre-releases", Rules{SemverConstraint: ">= 2", PreReleases: true}, []string{"2.0.0-rc.1", "2.0.0", "v3.0.0"}},
		{"variant", Rules{SemverConstraint: ">= 1", Variant: "alpine"}, []string{"1.9.3-alpine", "2.0.0-alpine"}},
		{"regex, semver order", Rules{TagRegex: `1\.[0-9]+\.[0-9]+`}, []string{"1.2.0", "1.9.3", "1.10.0"}},
		{"regex, name order", Rules{TagRegex: `main-.*|latest`}, []string{"latest", "main-abc"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Tags(all, c.rules)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
