package resource

import (
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imagesmith/buildah-image-resource/pkg/progress"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
)

// pushImage pushes what the put made with its tags and logs what the push uploaded: the
// manifest's digest and the bytes the image (or the index's images) holds.
func pushImage(p *put, img *outImage) (v1.Hash, int64, error) {
	start := time.Now()
	what, whose := "", "image's"
	if img.platforms > 0 {
		what, whose = " ("+platformCount(img.platforms)+")", "images'"
	}
	p.env.Log.Infof("pushing %s:%s%s", p.client.Name(), strings.Join(p.tags, ", "), what)
	digest, err := push(p.client, img.taggable, p.tags, p.env)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	size, err := img.size()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	p.env.Log.Infof("pushed %s@%s in %.1fs: uploaded %s, the registry had the rest of the %s %s",
		p.client.Name(), digest, time.Since(start).Seconds(), progress.Size(p.client.Uploaded()), whose, progress.Size(size))
	return digest, size, nil
}

// push pushes t and its tags, logging the upload's progress; the meter's last line comes before
// any error's (Push closes the updates channel on every path).
func push(client *registry.Client, t remote.Taggable, tags []string, env Env) (v1.Hash, error) {
	meter := progress.NewMeter(env.Log, "uploaded", 0)
	updates, consumed := make(chan v1.Update, 16), make(chan struct{})
	go func() { meter.Updates(updates); close(consumed) }()
	digest, err := client.Push(t, tags, updates)
	<-consumed
	return digest, err
}

// taggableSize is the bytes of an image's config and layers, or, for an index, indexSize of
// its images: one rule for every index a put pushes, built or ready-made.
func taggableSize(t remote.Taggable) (int64, error) {
	idx, ok := t.(v1.ImageIndex)
	if !ok {
		return imageSize(t.(v1.Image))
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	var images []v1.Image
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return 0, fmt.Errorf("image %s: %w", d.Digest, err)
		}
		images = append(images, img)
	}
	return indexSize(images)
}

// indexSize is the size of every image of idx, blobs shared between them counted once.
func indexSize(images []v1.Image) (int64, error) {
	seen := map[v1.Hash]bool{}
	var total int64
	for _, img := range images {
		m, err := img.Manifest()
		if err != nil {
			return 0, err
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				total += d.Size
			}
		}
	}
	return total, nil
}
