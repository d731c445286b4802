// Package discover picks, from a repository's tags, the ones check reports in
// tag_regex and semver modes, oldest first as Concourse expects.
package discover

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Rules are the source's discovery settings.
type Rules struct {
	TagRegex         string
	SemverConstraint string
	Variant          string
	PreReleases      bool
}

// Tags returns the tags the rules select, in ascending order: by semantic version in semver mode,
// and in tag_regex mode by semantic version when every match is one, else by name.
func Tags(all []string, r Rules) ([]string, error) {
	if r.TagRegex != "" {
		return byRegex(all, r.TagRegex)
	}
	return bySemver(all, r)
}

func byRegex(all []string, expr string) ([]string, error) {
	re, err := regexp.Compile("^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("source.tag_regex: %w", err)
	}
	var matched []string
	for _, tag := range all {
		if re.MatchString(tag) {
			matched = append(matched, tag)
		}
	}
	versions := make(map[string]*semver.Version, len(matched))
	for _, tag := range matched {
		if v, err := semver.NewVersion(tag); err == nil {
			versions[tag] = v
		}
	}
	sort.SliceStable(matched, func(i, j int) bool {
		if len(versions) == len(matched) {
			return versions[matched[i]].LessThan(versions[matched[j]])
		}
		return matched[i] < matched[j]
	})
	return matched, nil
}

func bySemver(all []string, r Rules) ([]string, error) {
	var constraint *semver.Constraints
	if r.SemverConstraint != "" {
		c, err := semver.NewConstraint(r.SemverConstraint)
		if err != nil {
			return nil, fmt.Errorf("source.semver_constraint: %w", err)
		}
		constraint = c
	}
	type tagged struct {
		tag string
		v   *semver.Version
	}
	var found []tagged
	for _, tag := range all {
		v, ok := Parse(tag, r.Variant)
		if !ok || (v.Prerelease() != "" && !r.PreReleases) {
			continue
		}
		if constraint != nil && !constraint.Check(withoutPrerelease(v, r.PreReleases)) {
			continue
		}
		found = append(found, tagged{tag, v})
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].v.LessThan(found[j].v) })
	tags := make([]string, len(found))
	for i, f := range found {
		tags[i] = f.tag
	}
	return tags, nil
}

// preRelease is the pre-release part discovery knows ("1.2.3-rc.1"); any other suffix is a variant.
var preRelease = regexp.MustCompile(`^(alpha|beta|rc)\.?[0-9]+$`)

// Parse reads a tag as a full semantic version (three numbers: alias tags such as "1.2" are not
// versions), with the variant suffix ("1.2.3-alpine") when one is set. A tag of another variant,
// or a plain one when a variant is set, does not parse.
func Parse(tag, variant string) (*semver.Version, bool) {
	if variant != "" {
		if !strings.HasSuffix(tag, "-"+variant) {
			return nil, false
		}
		tag = strings.TrimSuffix(tag, "-"+variant)
	}
	core := strings.SplitN(strings.TrimPrefix(tag, "v"), "-", 2)[0]
	if strings.Count(core, ".") != 2 {
		return nil, false
	}
	v, err := semver.NewVersion(tag)
	if err != nil || (v.Prerelease() != "" && !preRelease.MatchString(v.Prerelease())) {
		return nil, false
	}
	return v, true
}

// withoutPrerelease lets a constraint such as ">= 1.2" admit pre-releases when the user asked for them.
func withoutPrerelease(v *semver.Version, pre bool) *semver.Version {
	if !pre || v.Prerelease() == "" {
		return v
	}
	plain, _ := v.SetPrerelease("")
	return &plain
}
