package imagefile

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// inspected is one image as `docker inspect` shows it: the parts a pipeline reads from
// docker-image-resource's docker_inspect.json (labels, env, entrypoint, platform).
type inspected struct {
	ID           string    `json:"Id"`
	RepoTags     []string  `json:"RepoTags"`
	RepoDigests  []string  `json:"RepoDigests"`
	Created      time.Time `json:"Created"`
	Author       string    `json:"Author"`
	Config       v1.Config `json:"Config"`
	Architecture string    `json:"Architecture"`
	Variant      string    `json:"Variant,omitempty"`
	Os           string    `json:"Os"`
	Size         int64     `json:"Size"`
	RootFS       v1.RootFS `json:"RootFS"`
}

// WriteInspect writes dir/docker_inspect.json: a list holding the image as `docker inspect`
// describes it, tagged ref ("repo:tag") and pulled as repository@digest.
func WriteInspect(dir string, img v1.Image, ref, repository, digest string) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config digest: %w", err)
	}
	size, err := layersSize(img)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent([]inspected{{
		ID: id.String(), RepoTags: []string{ref}, RepoDigests: []string{repository + "@" + digest},
		Created: cfg.Created.Time, Author: cfg.Author, Config: cfg.Config,
		Architecture: cfg.Architecture, Variant: cfg.Variant, Os: cfg.OS, Size: size, RootFS: cfg.RootFS,
	}}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomically(filepath.Join(dir, "docker_inspect.json"), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func layersSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("read manifest: %w", err)
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}
