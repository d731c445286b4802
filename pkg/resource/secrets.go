package resource

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// writeSecrets gives each build secret a file, written 0600 into the private work dir: an env
// secret's value, or a copy of the source file read through the volume (at most volume.MaxSecret),
// so buildah never follows a path of the work dir. Each value is masked in the log from then on
// (line by line: a RUN that prints a key file shows none of its lines).
func writeSecrets(dir, workDir string, secrets map[string]api.Secret, env Env) (map[string]string, error) {
	out := map[string]string{}
	for id, s := range secrets {
		value, err := secretValue(volume.New(dir), id, s, env.Getenv)
		if err != nil {
			return nil, err
		}
		env.hide(secretLines(value))
		secretDir := filepath.Join(workDir, "secrets")
		if err := os.MkdirAll(secretDir, 0o700); err != nil {
			return nil, err
		}
		path := filepath.Join(secretDir, id)
		if err := os.WriteFile(path, value, 0o600); err != nil {
			return nil, fmt.Errorf("write secret %s: %w", id, err)
		}
		out[id] = path
	}
	return out, nil
}

// secretLines are the lines of a secret worth masking: the whole value and each line, trimmed,
// of four bytes or more (shorter ones would mask common words).
func secretLines(value []byte) []string {
	lines := []string{strings.TrimSpace(string(value))}
	for _, line := range strings.Split(string(value), "\n") {
		if line = strings.TrimSpace(line); len(line) >= 4 {
			lines = append(lines, line)
		}
	}
	return lines
}

// secretValue is a secret's content, from its source file or its environment variable.
func secretValue(vol volume.Volume, id string, s api.Secret, getenv func(string) string) ([]byte, error) {
	if s.Source != "" {
		f, err := vol.ReadFile("params.secrets."+id+".source", s.Source, volume.MaxSecret)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("params.secrets.%s.source: %s does not exist", id, s.Source)
		}
		return f.Data, err
	}
	value := getenv(s.Env)
	if value == "" {
		return nil, fmt.Errorf("params.secrets.%s.env: environment variable %s is not set", id, s.Env)
	}
	return []byte(value), nil
}
