package resource

import (
	"context"
	"fmt"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/discover"
	"github.com/imagesmith/buildah-image-resource/pkg/registry"
)

// Check reports the image digests of the source: the tag's current digest, or in tag_regex and
// semver modes every matching tag, oldest first, starting at the requested version when it is still there.
func Check(ctx context.Context, env Env) (any, error) {
	req, err := api.DecodeCheck(env.Stdin)
	env.hide(req.Source.Secrets()) // what was decoded, even from a request that is not valid
	if err != nil {
		return nil, err
	}
	src := req.Source
	debug(env.Log, src.Debug)
	for _, note := range req.Notes {
		env.Log.Info(note)
	}
	if env.Registries, err = newPolicy(ctx, src, env); err != nil {
		return nil, err
	}
	client, err := registry.New(ctx, env.Registries, src.Repository, env.Log, env.hideSent(), registry.WithJobs(src.MaxConcurrentUploads))
	if err != nil {
		return nil, err
	}
	if src.TagRegex == "" && src.SemverConstraint == "" {
		return checkTag(client, src.TagOrDefault())
	}
	all, err := client.Tags()
	if err != nil {
		return nil, err
	}
	tags, err := discover.Tags(all, discover.Rules{
		TagRegex: src.TagRegex, SemverConstraint: src.SemverConstraint, Variant: src.Variant, PreReleases: src.PreReleases,
	})
	if err != nil {
		return nil, err
	}
	env.Log.Debugf("check: %d of %d tags match", len(tags), len(all))
	return versionsSince(client, tags, req.Version)
}

func checkTag(client *registry.Client, tag string) ([]api.Version, error) {
	desc, err := client.Head(tag)
	if err != nil || desc == nil {
		return []api.Version{}, err
	}
	return []api.Version{{Digest: desc.Digest.String(), Tag: tag}}, nil
}

// versionsSince resolves the tags to versions, from the requested one on when it is among them.
func versionsSince(client *registry.Client, tags []string, since *api.Version) ([]api.Version, error) {
	if since != nil {
		for i, tag := range tags {
			if tag == since.Tag {
				tags = tags[i:]
				break
			}
		}
	}
	versions := []api.Version{}
	for _, tag := range tags {
		desc, err := client.Head(tag)
		if err != nil {
			return nil, fmt.Errorf("check tag %s: %w", tag, err)
		}
		if desc != nil { // deleted since it was listed
			versions = append(versions, api.Version{Digest: desc.Digest.String(), Tag: tag})
		}
	}
	return versions, nil
}
