package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

// NewFor makes a client for another repository than the source's, for images a put reads (a
// FROM image, a cache image): the source's credentials, TLS and insecure settings when it is on
// the source's registry, additional_private_registries' credentials and insecure_registries
// otherwise; Docker Hub repositories go through the mirror as the source's do.
func NewFor(ctx context.Context, src api.Source, repository string, log logrus.FieldLogger, opts ...Option) (*Client, error) {
	other := src
	other.Repository = repository
	srcRepo, srcErr := name.NewRepository(src.Repository)
	host := strings.SplitN(repository, "/", 2)[0]
	repo, err := name.NewRepository(repository, nameOptions(src, host)...)
	if err != nil {
		return nil, fmt.Errorf("parse repository %q: %w", repository, err)
	}
	if srcErr != nil || srcRepo.RegistryStr() != repo.RegistryStr() {
		other.Insecure = false
		other.Username, other.Password = "", ""
		for _, p := range src.PrivateRegs {
			if p.Registry == repo.RegistryStr() {
				other.Username, other.Password = p.Username, p.Password
			}
		}
	}
	return New(ctx, other, log, opts...)
}

// Lookup fetches the manifest and config (no layer) of the image identifier names in the
// repository: a tag or a digest; an index is resolved to the platform's image. It returns nil
// when the tag does not exist.
func (c *Client) Lookup(identifier string, platform v1.Platform) (*Fetched, error) {
	digest := identifier
	if !strings.HasPrefix(identifier, "sha256:") {
		desc, err := c.Head(identifier)
		if err != nil || desc == nil {
			return nil, err
		}
		digest = desc.Digest.String()
	}
	f, err := c.Get(digest, platform)
	if err != nil {
		return nil, err
	}
	if _, err := f.Image.RawConfigFile(); err != nil {
		return nil, fmt.Errorf("read config of %s@%s: %w", c.repo.Name(), digest, describe(err))
	}
	return f, nil
}
