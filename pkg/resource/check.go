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
	client, err := env.connect(ctx, src, req.Notes, registry.WithUploads(src.MaxConcurrentUploads))
	if err != nil {
		return nil, err
	}
	if !discovers(src) {
		return checkTag(client, src.TagOrDefault(), req.Version, env)
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
	versions, err := versionsSince(client, tags, req.Version)
	if err != nil || src.TagRegex != "" {
		return versions, err
	}
	return onePerDigest(versions), nil
}

// onePerDigest keeps, of semver versions sharing a digest, the highest (the last), as
// registry-image-resource does: 1.0.0-rc.1 pushed again as 1.0.0 is one version, 1.0.0.
func onePerDigest(versions []api.Version) []api.Version {
	last := map[string]int{}
	for i, v := range versions {
		last[v.Digest] = i
	}
	out := []api.Version{}
	for i, v := range versions {
		if last[v.Digest] == i {
			out = append(out, v)
		}
	}
	return out
}

// checkTag reports the tag's current digest, preceded by the requested version's when that is
// another digest the repository still serves, as docker-image-resource and registry-image-resource
// do: Concourse then keeps the requested version and adds the current one after it.
// discovers says whether check lists tags (tag_regex and semver modes) rather than following one.
// A source with only a repository follows latest, as docker-image-resource; one with a variant or
// pre_releases and no tag discovers semver tags, as registry-image-resource.
func discovers(src api.Source) bool {
	return src.TagRegex != "" || src.SemverConstraint != "" || (src.Tag == "" && (src.Variant != "" || src.PreReleases))
}

func checkTag(client *registry.Client, tag string, since *api.Version, env Env) ([]api.Version, error) {
	desc, err := client.Head(tag)
	if err != nil || desc == nil {
		return []api.Version{}, err
	}
	current := api.Version{Digest: desc.Digest.String(), Tag: tag}
	if since == nil || since.Digest == "" || since.Digest == current.Digest {
		return []api.Version{current}, nil
	}
	if _, err := client.Get(since.Digest, platformOf(nil)); err != nil {
		env.Log.Debugf("check: the requested version %s is gone (%v): reporting the current one only", since.Digest, err)
		return []api.Version{current}, nil
	}
	return []api.Version{{Digest: since.Digest, Tag: tag}, current}, nil
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
