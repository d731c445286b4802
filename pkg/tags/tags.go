// Package tags computes the tags a put pushes, from docker-image-resource's params (tag_file,
// tag_prefix, tag_as_latest, additional_tags) and registry-image-resource's (version, bump_aliases).
package tags

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/discover"
	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// Params say where the tags come from.
type Params struct {
	DefaultTag     string // the source's tag, used when no other rule names one
	Variant        string // the source's variant: appended to versions ("1.2.3-alpine")
	TagFile        string
	TagPrefix      string
	TagAsLatest    bool
	AdditionalTags string
	Version        string
	BumpAliases    bool
}

// Resolve returns the tags to push, the primary one first. Paths are relative to dir; existing
// lists the repository's tags and is called only for bump_aliases.
func Resolve(dir string, p Params, existing func() ([]string, error)) ([]string, error) {
	primary, err := primaryTag(dir, p)
	if err != nil {
		return nil, err
	}
	out := []string{primary}
	if p.Version != "" && p.BumpAliases {
		all, err := existing()
		if err != nil {
			return nil, err
		}
		out = append(out, aliases(p.Version, p.Variant, all)...)
	}
	if p.TagAsLatest {
		out = append(out, "latest")
	}
	if p.AdditionalTags != "" {
		extra, err := additionalTags(dir, p)
		if err != nil {
			return nil, err
		}
		out = append(out, extra...)
	}
	return unique(out), nil
}

// additionalTags reads additional_tags. Without a tag_file, tag_prefix goes on each of them, as
// registry-image-resource does; with one it goes on the tag file's tag only, as docker-image-resource.
func additionalTags(dir string, p Params) ([]string, error) {
	tags, err := readTags(dir, p.AdditionalTags, "params.additional_tags")
	if err != nil || p.TagFile != "" || p.TagPrefix == "" {
		return tags, err
	}
	for i, tag := range tags {
		tags[i] = p.TagPrefix + tag
		if !api.ValidTag(tags[i]) {
			return nil, fmt.Errorf("params.tag_prefix: %q with additional tag %d makes %d characters, more than a tag's 128", p.TagPrefix, i+1, len(tags[i]))
		}
	}
	return tags, nil
}

func primaryTag(dir string, p Params) (string, error) {
	switch {
	case p.Version != "":
		return withVariant(p.Version, p.Variant), nil
	case p.TagFile != "":
		tags, err := readTags(dir, p.TagFile, "params.tag_file")
		if err != nil {
			return "", err
		}
		tag := p.TagPrefix + tags[0]
		if !api.ValidTag(tag) { // the file's tag is valid: the two are too long together
			return "", fmt.Errorf("params.tag_prefix: %q with the tag file's tag makes %d characters, more than a tag's 128", p.TagPrefix, len(tag))
		}
		return tag, nil
	case p.DefaultTag != "":
		return p.DefaultTag, nil
	default:
		return "latest", nil
	}
}

// readTags reads whitespace-separated tags from a file; it must hold at least one, all valid.
// The file is read through the volume: it stays in dir unless its path is absolute.
func readTags(dir, file, field string) ([]string, error) {
	f, err := volume.New(dir).ReadFile(field, file, volume.MaxParamFile)
	if err != nil {
		return nil, err
	}
	tags := strings.Fields(string(f.Data))
	if len(tags) == 0 {
		return nil, fmt.Errorf("%s: %s is empty, expected a tag", field, file)
	}
	for i, tag := range tags {
		if !api.ValidTag(tag) {
			return nil, fmt.Errorf("%s: %s holds %s, expected letters, digits, '_', '.' or '-'", field, file, describeTag(f, i, tag))
		}
	}
	return tags, nil
}

// describeTag names an invalid tag in an error: quoted when short and from inside the volume,
// else by position, so that no content of a file elsewhere reaches the build log.
func describeTag(f volume.File, i int, tag string) string {
	if f.Quotable(tag) {
		return strconv.Quote(tag)
	}
	return fmt.Sprintf("an invalid tag (word %d, %d bytes)", i+1, len(tag))
}

// aliases are MAJOR.MINOR, MAJOR and latest (or the variant's name) when the version is the
// newest of those lines among the existing tags. Pre-releases move no alias.
func aliases(version, variant string, existing []string) []string {
	v, ok := discover.Parse(withVariant(version, variant), variant)
	if !ok || v.Prerelease() != "" {
		return nil
	}
	newest := func(sameLine func(major, minor uint64) bool) bool {
		for _, tag := range existing {
			other, ok := discover.Parse(tag, variant)
			if ok && other.Prerelease() == "" && sameLine(other.Major(), other.Minor()) && other.GreaterThan(v) {
				return false
			}
		}
		return true
	}
	major := strconv.FormatUint(v.Major(), 10)
	minor := major + "." + strconv.FormatUint(v.Minor(), 10)
	var out []string
	if newest(func(ma, mi uint64) bool { return ma == v.Major() && mi == v.Minor() }) {
		out = append(out, withVariant(minor, variant))
	}
	if newest(func(ma, _ uint64) bool { return ma == v.Major() }) {
		out = append(out, withVariant(major, variant))
	}
	if newest(func(uint64, uint64) bool { return true }) {
		if variant != "" {
			out = append(out, variant)
		} else {
			out = append(out, "latest")
		}
	}
	return out
}

func withVariant(tag, variant string) string {
	if variant == "" {
		return tag
	}
	return tag + "-" + variant
}

func unique(tags []string) []string {
	seen := map[string]bool{}
	out := tags[:0]
	for _, t := range tags {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
