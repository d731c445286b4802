package testharness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift/imagebuilder"
)

// TestDockerfilesParse parses the resource image's Dockerfiles the way
// buildah does and checks their stages and base image build args.
func TestDockerfilesParse(t *testing.T) {
	root := ModuleRoot(t)
	for file, defaultBase := range map[string]string{
		"Dockerfile":                     "debian:bookworm-slim",
		"dockerfiles/Dockerfile.busybox": "busybox:1.36",
	} {
		t.Run(file, func(t *testing.T) {
			content, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			bases := stageBases(t, string(content), nil)
			if len(bases) != 2 || bases[0] != "golang:1.26-bookworm" || bases[1] != defaultBase {
				t.Errorf("stages from %q, want golang:1.26-bookworm then %s", bases, defaultBase)
			}
			bases = stageBases(t, string(content), map[string]string{"GO_IMAGE": "localhost/go", "BASE_IMAGE": "localhost/base"})
			if strings.Join(bases, " ") != "localhost/go localhost/base" {
				t.Errorf("with build args, stages from %q", bases)
			}
			for _, want := range []string{"./cmd/check ./cmd/in ./cmd/out", "netgo osusergo", `-extldflags "-static"`,
				"COPY --from=builder /opt/resource/ /opt/resource/", "/etc/ssl/certs/ca-certificates.crt"} {
				if !strings.Contains(string(content), want) {
					t.Errorf("%s lacks %q", file, want)
				}
			}
		})
	}
}

// stageBases returns the base image of each stage after build args.
func stageBases(t *testing.T, dockerfile string, args map[string]string) []string {
	t.Helper()
	node, err := imagebuilder.ParseDockerfile(strings.NewReader(dockerfile))
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	stages, err := imagebuilder.NewStages(node, imagebuilder.NewBuilder(args))
	if err != nil {
		t.Fatalf("splitting stages: %v", err)
	}
	var bases []string
	for _, stage := range stages {
		base, err := stage.Builder.From(stage.Node)
		if err != nil {
			t.Fatalf("stage %s: %v", stage.Name, err)
		}
		bases = append(bases, base)
	}
	return bases
}

func TestCIScriptsParse(t *testing.T) {
	root := ModuleRoot(t)
	for _, script := range []string{"setup", "test", "run", "demo"} {
		path := filepath.Join(root, ".ci", script)
		if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", path, err, out)
		}
		if info, err := os.Stat(path); err != nil || info.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (%v)", path, err)
		}
	}
}
