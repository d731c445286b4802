package access

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// deciding matches code that decides registry credentials, TLS trust, insecure registries or
// mirrors, or reads the source fields they come from: only this package (and pkg/api, which
// decodes them) may hold it.
var deciding = regexp.MustCompile(`authn\.(Basic|Anonymous|FromConfig|DefaultKeychain)|remote\.WithAuth|DockerAuthConfig|` +
	`writeAuthFile|writeRegistriesConf|InsecureSkipVerify|name\.Insecure|RootCAs|DockerCertPath|` +
	`\.(PrivateRegs|RegistryMirror|InsecureRegistries|CACerts|ClientCerts|DockerConfigJSON|Password|Insecure)\b|\.AWS[A-Z]|UsesECR`)

// allowedDirs may decide: the policy, the request decoding, and the test harness's and the
// benchmarks' own clients of their test registries.
var allowedDirs = []string{"pkg/access/", "pkg/api/", "pkg/testharness/", "bench/"}

// TestOnlyThePolicyDecides fails when code outside the policy decides credentials, TLS or
// mirrors: every registry request must ask the policy.
func TestOnlyThePolicyDecides(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && path != root && fileExists(filepath.Join(path, "go.mod")) {
			return filepath.SkipDir // another module (third_party/buildah): not this project's code
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, dir := range allowedDirs {
			if strings.HasPrefix(filepath.ToSlash(rel), dir) {
				return nil
			}
		}
		hits, err := decidingLines(path)
		for _, h := range hits {
			found = append(found, rel+":"+h)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("decides registry access outside pkg/access: %s", f)
	}
}

// TestDecidingLinesFinds: the scan does see a violation.
func TestDecidingLinesFinds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.go")
	text := "package x\nvar a = &authn.Basic{Username: src.Username, Password: src.Password}\nvar b = types.DockerConfigJSON\nvar c = remote.WithAuth(a)\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	hits, err := decidingLines(path)
	if err != nil || len(hits) != 2 || !strings.HasPrefix(hits[0], "2:") || !strings.HasPrefix(hits[1], "4:") {
		t.Errorf("decidingLines = %q, %v; want lines 2 and 4", hits, err)
	}
}

// decidingLines are the "line: text" of path's lines matching deciding (comments excluded;
// go-containerregistry's media type types.DockerConfigJSON is no source field).
func decidingLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hits []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; scanner.Scan(); n++ {
		line := strings.TrimSpace(scanner.Text())
		code, _, _ := strings.Cut(line, "//")
		code = strings.ReplaceAll(code, "types.DockerConfigJSON", "")
		if !strings.HasPrefix(line, "//") && deciding.MatchString(code) {
			hits = append(hits, fmt.Sprintf("%d: %s", n, line))
		}
	}
	return hits, scanner.Err()
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
