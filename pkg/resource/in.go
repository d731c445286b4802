package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/imagefile"
	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
)

// In saves the version's image into the work directory, fetched by digest: image.tar (format oci,
// the default), oci/ (oci-layout) or rootfs/ (rootfs), and docker-image-resource's image (save)
// and rootfs.tar with rootfs/ (rootfs: true); then metadata.json and docker_inspect.json; and always the
// files repository, tag, digest, image-id and labels.json.
// Each blob is downloaded once, layers in parallel (see saveImage).
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
	client, err := env.connect(ctx, src, req.Notes, registry.WithDownloads(src.MaxConcurrentDownloads))
	if err != nil {
		return nil, err
	}
	tag := req.Version.Tag
	if tag == "" {
		tag = src.TagOrDefault()
	}
	platform := api.RunningPlatform()
	if params.Platform != nil {
		platform = *params.Platform
	}
	fetched, err := client.Get(req.Version.Digest, v1.Platform{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant})
	if err != nil {
		return nil, err
	}
	img := fetched.Image
	ref := client.Name() + ":" + tag
	size, err := imageSize(img)
	if err != nil {
		return nil, err
	}
	if !params.SkipDownload { // the config comes alongside the layers
		env.Log.Infof("fetching %s@%s (%s, %d MB)", client.Name(), req.Version.Digest, platform, size>>20)
		if err := saveImage(dir, params, ref, req.Version.Digest, fetched, src.MaxConcurrentDownloads, env); err != nil {
			return nil, err
		}
	}
	if err := writeInfo(dir, client.Name(), tag, req.Version.Digest, img); err != nil {
		return nil, err
	}
	extra, err := matchingMetadata(img, src)
	if err != nil {
		return nil, err
	}
	return api.Response{Version: req.Version, Metadata: append([]api.MetadataField{
		{Name: "repository", Value: client.Name()},
		{Name: "tag", Value: tag},
		{Name: "digest", Value: req.Version.Digest},
		{Name: "platform", Value: platform.String()},
		{Name: "size", Value: strconv.FormatInt(size, 10)},
	}, extra...)}, nil
}

// matchingMetadata are the image's labels whose key matches source.label_regex, then its
// manifest annotations matching source.annotation_regex, each sorted by key
// (registry-image-resource's get metadata).
func matchingMetadata(img v1.Image, src api.Source) ([]api.MetadataField, error) {
	var out []api.MetadataField
	if src.LabelRegex != "" {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read image config: %w", err)
		}
		out = append(out, matching(src.LabelRegex, cfg.Config.Labels)...)
	}
	if src.AnnotationRegex != "" {
		m, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		out = append(out, matching(src.AnnotationRegex, m.Annotations)...)
	}
	return out, nil
}

// matching are the entries whose key matches expr (validated when the request was read), by key.
func matching(expr string, values map[string]string) []api.MetadataField {
	re := regexp.MustCompile(expr)
	var out []api.MetadataField
	for _, k := range slices.Sorted(maps.Keys(values)) {
		if re.MatchString(k) {
			out = append(out, api.MetadataField{Name: k, Value: values[k]})
		}
	}
	return out
}

// outputs are the files a get writes. An explicit format is written as asked. Without one,
// docker-image-resource's save and rootfs say what is written, as there (image; rootfs.tar and
// rootfs/); with neither, format rootfs, as both of them.
type outputs struct {
	ociArchive, ociLayout, rootfsDir bool // image.tar, oci/, rootfs/
	dockerArchive, rootfsTar         bool // image, rootfs.tar
}

func wanted(p api.InParams) outputs {
	format := p.Format
	if format == "" && !p.Save && !p.Rootfs {
		format = "rootfs" // both docker-image-resource's and registry-image-resource's default
	}
	return outputs{
		ociArchive: format == "oci", ociLayout: format == "oci-layout", rootfsDir: format == "rootfs" || p.Rootfs,
		dockerArchive: p.Save, rootfsTar: p.Rootfs,
	}
}

// saveImage writes the files the params ask for, then metadata.json and docker_inspect.json.
// The image's blobs cross the link once: fetched in parallel (source.max_concurrent_downloads at
// a time), each checked against its digest, into their places in image.tar (format oci) or else
// into a private directory of the volume, removed at the end. Every file is made from there:
// rootfs/ layer by layer as the layers arrive, the others once all have.
func saveImage(dir string, params api.InParams, ref, digest string, fetched *registry.Fetched, jobs int, env Env) error {
	metered, meter, err := progress.Image(fetched.Image, env.Log, "downloaded")
	if err != nil {
		return err
	}
	out := wanted(params)
	staged, err := stage(dir, metered, out, ref, jobs)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", ref, err)
	}
	defer staged.Close()
	if err := writeFilesystems(dir, staged.Image, out); err != nil {
		return err
	}
	if err := staged.Wait(); err != nil {
		return fmt.Errorf("fetch %s: %w", ref, err)
	}
	meter.Done()
	if err := writeArchives(dir, out, ref, fetched, staged); err != nil {
		return err
	}
	if err := imagefile.WriteMetadata(dir, staged.Image); err != nil {
		return err
	}
	return imagefile.WriteInspect(dir, staged.Image, ref, ref[:strings.LastIndex(ref, ":")], digest) // ref ends in ":tag"
}

// stage starts fetching the image's blobs: straight into image.tar when it is asked for.
func stage(dir string, img v1.Image, out outputs, ref string, jobs int) (*imagefile.Staged, error) {
	if out.ociArchive {
		return imagefile.StageArchive(img, filepath.Join(dir, "image.tar"), ref, jobs)
	}
	return imagefile.Stage(img, dir, jobs)
}

// writeArchives writes image.tar (format oci: the staged archive, kept), oci/ (format
// oci-layout) and image (save: true).
func writeArchives(dir string, out outputs, ref string, fetched *registry.Fetched, staged *imagefile.Staged) error {
	if out.ociArchive {
		if err := staged.Keep(); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(dir, "image.tar"), err)
		}
	}
	if out.ociLayout {
		if err := writeLayout(dir, staged, fetched, ref); err != nil {
			return err
		}
	}
	if out.dockerArchive {
		return imagefile.WriteDockerArchive(filepath.Join(dir, "image"), staged.Image, ref)
	}
	return nil
}

// writeLayout writes oci/: the whole index when the version is one, every platform; the staged
// platform's blobs are linked in, not fetched again.
func writeLayout(dir string, staged *imagefile.Staged, fetched *registry.Fetched, ref string) error {
	var item any = staged.Image
	if fetched.Index != nil {
		if err := fetched.CheckConfigs(); err != nil {
			return fmt.Errorf("fetch %s: %w", ref, err)
		}
		item = fetched.Index // the whole index, every platform
	}
	return imagefile.WriteOCILayout(filepath.Join(dir, "oci"), item, ref, staged)
}

// writeFilesystems writes rootfs/ (format: rootfs, rootfs: true) and then rootfs.tar from it
// (rootfs: true).
func writeFilesystems(dir string, img v1.Image, out outputs) error {
	if !out.rootfsDir {
		return nil
	}
	if err := imagefile.WriteRootfs(dir, img); err != nil {
		return err
	}
	if out.rootfsTar {
		return imagefile.WriteRootfsTar(dir)
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
