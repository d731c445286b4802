package resource

import (
	"fmt"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// readyOut is the image a put without a build pushes (image, load, load_file or import_file).
func readyOut(p *put) (*outImage, error) {
	archive, err := readyImage(p.dir, p.params)
	if err != nil {
		return nil, err
	}
	img, err := readyTaggable(p.client, archive, p.params, p.env)
	if err != nil {
		archive.Close()
		return nil, err
	}
	return &outImage{taggable: img, size: func() (int64, error) { return taggableSize(img) }, close: func() { archive.Close() }}, nil
}

// readyTaggable is what a put without a build pushes: the whole index when params.image names an
// OCI layout holding one (a get with format oci-layout: every platform, the digest unchanged, as
// registry-image-resource), else the archive's image.
func readyTaggable(client *registry.Client, archive *imagefile.Archive, p api.OutParams, env Env) (remote.Taggable, error) {
	if p.Image != "" && archive.Format == imagefile.OCILayout {
		idx, err := imagefile.SavedIndex(archive.Path)
		if err != nil {
			return nil, fmt.Errorf("params.image: %w", err)
		}
		if idx != nil {
			m, err := idx.IndexManifest()
			if err != nil {
				return nil, fmt.Errorf("params.image: %w", err)
			}
			env.Log.Infof("params.image: %s holds an index of %d images: pushing all of it", p.Image, len(m.Manifests))
			return idx, nil
		}
	}
	return client.MountFrom(archive.Image, layerSources(archive)), nil
}

// readyImage opens the image a put pushes without building: image (a glob), load, load_file or import_file.
func readyImage(dir string, p api.OutParams) (*imagefile.Archive, error) {
	field, path, err := readyPath(dir, p)
	if err != nil {
		return nil, err
	}
	archive, err := openReady(path, p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return archive, nil
}

// readyPath is the param naming the image and its path, checked through the volume: a relative
// one stays in the work dir.
func readyPath(dir string, p api.OutParams) (field, path string, err error) {
	vol := volume.New(dir)
	switch {
	case p.Image != "":
		path, err = globOne(vol, dir, p.Image)
		return "params.image", path, err
	case p.Load != "":
		field, path = "params.load", p.Load
	case p.LoadFile != "":
		field, path = "params.load_file", p.LoadFile
	default:
		field, path = "params.import_file", p.ImportFile
	}
	path, err = vol.Path(field, path)
	return field, path, err
}

// openReady opens the image at path, which readyPath found.
func openReady(path string, p api.OutParams) (*imagefile.Archive, error) {
	platform := v1.Platform{OS: api.RunningPlatform().OS, Architecture: api.RunningPlatform().Architecture}
	switch {
	case p.Image != "", p.Load != "":
		return imagefile.Open(path, platform)
	case p.LoadFile != "":
		format, _, err := imagefile.Detect(path)
		if err != nil || format != imagefile.DockerArchive || p.LoadRepository == "" {
			return imagefile.Open(path, platform)
		}
		tag := p.LoadTag
		if tag == "" {
			tag = "latest"
		}
		return imagefile.OpenDockerArchive(path, p.LoadRepository+":"+tag)
	default:
		img, err := imagefile.Import(path)
		return &imagefile.Archive{Image: img}, err
	}
}

// globOne expands pattern, below dir unless absolute; it must name exactly one file, which stays
// in the work dir when the pattern is relative.
func globOne(vol volume.Volume, dir, pattern string) (string, error) {
	full := pattern
	if !filepath.IsAbs(pattern) {
		full = filepath.Join(dir, pattern)
	}
	matches, err := filepath.Glob(full)
	if err != nil {
		return "", fmt.Errorf("params.image: bad pattern %q: %w", pattern, err)
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("params.image: %q matched %d files, expected exactly one", pattern, len(matches))
	}
	name := matches[0]
	if !filepath.IsAbs(pattern) {
		if name, err = filepath.Rel(dir, name); err != nil {
			return "", fmt.Errorf("params.image: %w", err)
		}
	}
	return vol.Path("params.image", name)
}

// layerSources maps each layer of a saved image to the reference it was saved from, for mounts.
func layerSources(a *imagefile.Archive) map[v1.Hash]string {
	sources := map[v1.Hash]string{}
	if a.Name == "" {
		return sources
	}
	layers, err := a.Image.Layers()
	if err != nil {
		return sources // the push reports it
	}
	for _, l := range layers {
		if digest, err := l.Digest(); err == nil {
			sources[digest] = a.Name
		}
	}
	return sources
}
