package registry

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

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
