package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
)

// In saves the version's image into the work directory, fetched by digest: image.tar (format oci),
// oci/ (oci-layout) or rootfs/ (rootfs), plus docker-image-resource's image (save) and rootfs/
// (rootfs: true), and always the files repository, tag, digest, image-id and labels.json.
// Each layer is downloaded once: later files are made from the first one written.
func In(ctx context.Context, env Env) (any, error) {
	dir, err := env.Dir()
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeIn(env.Stdin)
	env.hide(req.Source.Secrets()) // what was decoded, even from a request that is not valid
	if err != nil {
		return nil, err
	}
	src, params := req.Source, req.Params
	debug(env.Log, src.Debug)
	for _, note := range req.Notes {
		env.Log.Info(note)
	}
	tag := req.Version.Tag
	if tag == "" {
		tag = src.TagOrDefault()
	}
	platform := api.RunningPlatform()
	if params.Platform != nil {
		platform = *params.Platform
	}
	if env.Registries, err = newPolicy(ctx, src, env); err != nil {
		return nil, err
	}
	client, err := registry.New(ctx, env.Registries, src.Repository, env.Log, env.hideSent(), registry.WithJobs(src.MaxConcurrentUploads))
	if err != nil {
		return nil, err
	}
	fetched, err := client.Get(req.Version.Digest, v1.Platform{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant})
	if err != nil {
		return nil, err
	}
	img := fetched.Image
	ref := client.Name() + ":" + tag
	if err := writeInfo(dir, client.Name(), tag, req.Version.Digest, img); err != nil {
		return nil, err
	}
	size, err := imageSize(img)
	if err != nil {
		return nil, err
	}
	if !params.SkipDownload {
		env.Log.Infof("fetching %s@%s (%s, %d MB)", client.Name(), req.Version.Digest, platform, size>>20)
		if err := saveImage(dir, params, ref, fetched, env); err != nil {
			return nil, err
		}
	}
	return api.Response{Version: req.Version, Metadata: []api.MetadataField{
		{Name: "repository", Value: client.Name()},
		{Name: "tag", Value: tag},
		{Name: "digest", Value: req.Version.Digest},
		{Name: "platform", Value: platform.String()},
		{Name: "size", Value: strconv.FormatInt(size, 10)},
	}}, nil
}

// saveImage writes the files the params ask for. The first archive is fetched from the registry;
// the rest are made from it.
func saveImage(dir string, params api.InParams, ref string, fetched *registry.Fetched, env Env) error {
	img, meter, err := progress.Image(fetched.Image, env.Log, "downloaded")
	if err != nil {
		return err
	}
	local := func(path string) error {
		meter.Done()
		a, err := imagefile.Open(path, v1.Platform{})
		if err != nil {
			return err
		}
		img = a.Image // the files below are made from the local copy
		return nil
	}
	switch params.Format {
	case "", "oci":
		path := filepath.Join(dir, "image.tar")
		if err := imagefile.WriteOCIArchive(path, img, ref); err != nil {
			return err
		}
		if err := local(path); err != nil {
			return err
		}
	case "oci-layout":
		var item any = img
		if fetched.Index != nil {
			if err := fetched.CheckConfigs(); err != nil {
				return fmt.Errorf("fetch %s: %w", ref, err)
			}
			item = fetched.Index // the whole index, every platform
		}
		if err := imagefile.WriteOCILayout(filepath.Join(dir, "oci"), item, ref); err != nil {
			return err
		}
	}
	if params.Save {
		path := filepath.Join(dir, "image")
		if err := imagefile.WriteDockerArchive(path, img, ref); err != nil {
			return err
		}
		if err := local(path); err != nil {
			return err
		}
	}
	if params.Format == "rootfs" || params.Rootfs {
		if err := imagefile.WriteRootfs(dir, img); err != nil {
			return err
		}
	}
	return nil
}

// writeInfo writes the small files every resource of this kind has written.
func writeInfo(dir, repository, tag, digest string, img v1.Image) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read image config: %w", err)
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return err
	}
	labels := cfg.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	labelsJSON, err := json.Marshal(labels)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"repository":  []byte(repository),
		"tag":         []byte(tag),
		"digest":      []byte(digest),
		"image-id":    []byte(configDigest.String()),
		"labels.json": labelsJSON,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("read manifest: %w", err)
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}
