package api

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/name"
)

// FieldError is a bad value, named by its path in the request.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// under prefixes the path with the enclosing field.
func (e *FieldError) under(parent string) *FieldError {
	if e.Path == "" {
		return &FieldError{Path: parent, Msg: e.Msg}
	}
	return &FieldError{Path: parent + "." + e.Path, Msg: e.Msg}
}

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// ValidTag reports whether s is a legal image tag.
func ValidTag(s string) bool { return tagPattern.MatchString(s) }

// UnmarshalJSON accepts a PEM string (registry-image-resource) or {domain, cert} (docker-image-resource).
func (c *CACert) UnmarshalJSON(data []byte) error {
	var pemText string
	if json.Unmarshal(data, &pemText) == nil {
		*c = CACert{Cert: pemText}
		return nil
	}
	type plain CACert
	var p plain
	if err := decodeStrict(data, "", &p); err != nil {
		return &FieldError{Path: "ca_certs", Msg: "expected PEM strings or {domain, cert} items"}
	}
	*c = CACert(p)
	return nil
}

// UnmarshalJSON accepts {host, username, password} or docker-image-resource's URL string.
func (m *Mirror) UnmarshalJSON(data []byte) error {
	var url string
	if json.Unmarshal(data, &url) == nil {
		host := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
		*m = Mirror{Host: strings.TrimSuffix(host, "/")}
		return nil
	}
	type plain Mirror
	var p plain
	if err := decodeStrict(data, "", &p); err != nil {
		return &FieldError{Path: "registry_mirror", Msg: "expected {host, username, password} or a URL string"}
	}
	*m = Mirror(p)
	return nil
}

// UnmarshalJSON accepts {os, architecture, variant} or "os/arch[/variant]".
func (p *Platform) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		parts := strings.Split(s, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return &FieldError{Path: "platform", Msg: fmt.Sprintf("expected os/architecture[/variant], got %q", s)}
		}
		*p = Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		return nil
	}
	type plain Platform
	var q plain
	if err := decodeStrict(data, "", &q); err != nil {
		return &FieldError{Path: "platform", Msg: "expected \"os/architecture\" or {os, architecture, variant}"}
	}
	*p = Platform(q)
	if p.OS == "" || p.Architecture == "" {
		return &FieldError{Path: "platform", Msg: "expected both os and architecture"}
	}
	return nil
}

// UnmarshalJSON accepts a list of platforms; an item's error names its index.
func (l *PlatformList) UnmarshalJSON(data []byte) error {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return &FieldError{Path: "platforms", Msg: "expected a list of platforms such as [linux/amd64, linux/arm64]"}
	}
	out := make(PlatformList, len(items))
	for i, item := range items {
		if err := out[i].UnmarshalJSON(item); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return &FieldError{Path: fmt.Sprintf("platforms[%d]", i), Msg: fe.Msg}
			}
			return err
		}
	}
	*l = out
	return nil
}

// UnmarshalJSON accepts true, false ("true" and "false" too) or a list of mount ids.
func (c *CacheMounts) UnmarshalJSON(data []byte) error {
	if json.Unmarshal(data, &c.All) == nil {
		return nil
	}
	var s string
	if json.Unmarshal(data, &s) == nil {
		if all, ok := parseBool(s); ok {
			c.All = all
			return nil
		}
	}
	if err := json.Unmarshal(data, &c.IDs); err != nil {
		return &FieldError{Path: "cache_mounts", Msg: "expected true or a list of cache mount ids"}
	}
	return nil
}

// UnmarshalJSON accepts a number of bytes or a string such as "500MB" or "2GiB".
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n int64
	if json.Unmarshal(data, &n) == nil && n > 0 {
		*b = ByteSize(n)
		return nil
	}
	var s string
	_ = json.Unmarshal(data, &s)
	units := []struct {
		suffix string
		factor int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if number, ok := strings.CutSuffix(strings.TrimSpace(s), u.suffix); ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(number), 64); err == nil && v > 0 {
				*b = ByteSize(v * float64(u.factor))
				return nil
			}
		}
	}
	return &FieldError{Path: "cache_mounts_max_size", Msg: fmt.Sprintf("expected a size such as 2GiB or 500MB, got %s", data)}
}

// String formats the platform as os/arch[/variant].
func (p Platform) String() string {
	if p.Variant != "" {
		return p.OS + "/" + p.Architecture + "/" + p.Variant
	}
	return p.OS + "/" + p.Architecture
}

// RunningPlatform is the platform this binary runs on.
func RunningPlatform() Platform { return Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH} }

// TagOrDefault is the configured tag, "latest" when none is set.
func (s Source) TagOrDefault() string {
	if s.Tag == "" {
		return "latest"
	}
	return s.Tag
}

func (s *Source) validate(raw json.RawMessage) error {
	var present map[string]json.RawMessage
	_ = json.Unmarshal(raw, &present)
	if s.Repository == "" {
		return fieldErr("source.repository", "required")
	}
	if _, err := name.NewRepository(s.Repository); err != nil {
		return fieldErr("source.repository", "expected a repository such as registry.example.com/team/app, got %q", s.Repository)
	}
	if _, set := present["tag"]; set && !ValidTag(s.Tag) {
		return fieldErr("source.tag", "expected a tag of letters, digits, '_', '.' or '-' (at most 128), got %q", s.Tag)
	}
	if s.Username != "" && s.Password == "" {
		return fieldErr("source.password", "required when source.username is set")
	}
	if s.TagRegex != "" {
		if s.SemverConstraint != "" {
			return fieldErr("source.tag_regex", "cannot be combined with source.semver_constraint")
		}
		if _, err := regexp.Compile(s.TagRegex); err != nil {
			return fieldErr("source.tag_regex", "expected a regular expression: %v", err)
		}
	}
	if s.SemverConstraint != "" {
		if _, err := semver.NewConstraint(s.SemverConstraint); err != nil {
			return fieldErr("source.semver_constraint", "expected a semver constraint such as \">= 1.2, < 2\": %v", err)
		}
	}
	if (s.TagRegex != "" || s.SemverConstraint != "") && s.Tag != "" {
		return fieldErr("source.tag", "cannot be combined with source.tag_regex or source.semver_constraint")
	}
	for field, expr := range map[string]string{"source.label_regex": s.LabelRegex, "source.annotation_regex": s.AnnotationRegex} {
		if _, err := regexp.Compile(expr); err != nil {
			return fieldErr(field, "expected a regular expression: %v", err)
		}
	}
	for i, c := range s.CACerts {
		if !isPEMCertificate(c.Cert) {
			return fieldErr(fmt.Sprintf("source.ca_certs[%d]", i), "expected a PEM certificate")
		}
	}
	if s.RegistryMirror != nil && s.RegistryMirror.Host == "" {
		return fieldErr("source.registry_mirror.host", "required")
	}
	for i, p := range s.PrivateRegs {
		if p.Registry == "" {
			return fieldErr(fmt.Sprintf("source.additional_private_registries[%d].registry", i), "required")
		}
	}
	if err := s.validateAccess(); err != nil {
		return err
	}
	if s.MaxConcurrentDownloads < 0 || s.MaxConcurrentUploads < 0 {
		return fieldErr("source.max_concurrent_downloads", "expected a positive number")
	}
	return nil
}

// validateAccess checks client_certs, docker_config_json and the aws_* fields.
func (s *Source) validateAccess() error {
	for i, c := range s.ClientCerts {
		path := fmt.Sprintf("source.client_certs[%d]", i)
		if c.Domain == "" {
			return fieldErr(path+".domain", "required")
		}
		if _, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key)); err != nil {
			return fieldErr(path, "expected a PEM certificate (cert) and its PEM private key (key)")
		}
	}
	if s.DockerConfigJSON != "" {
		cfg, err := ParseDockerConfig(s.DockerConfigJSON)
		if err != nil {
			return fieldErr("source.docker_config_json", "%v", err)
		}
		if cfg.CredsStore != "" || len(cfg.CredHelpers) > 0 {
			return fieldErr("source.docker_config_json", "credsStore and credHelpers are not supported (no credential helper runs here): give auths entries")
		}
		for host, a := range cfg.Auths {
			if a.Auth == "" && a.Username == "" && a.IdentityToken == "" {
				return fieldErr("source.docker_config_json", "auths[%q]: expected auth, or username and password", host)
			}
			if a.IdentityToken != "" && a.Auth == "" && a.Password == "" {
				return fieldErr("source.docker_config_json", "auths[%q]: identitytoken (OAuth refresh tokens) is not supported: give auth, or username and password", host)
			}
		}
	}
	if s.AWSRoleARN != "" && len(s.AWSRoleARNs) > 0 {
		return fieldErr("source.aws_role_arn", "cannot be combined with source.aws_role_arns")
	}
	if (s.AWSAccessKeyID == "") != (s.AWSSecretAccessKey == "") {
		return fieldErr("source.aws_secret_access_key", "aws_access_key_id and aws_secret_access_key go together")
	}
	if s.UsesECR() && s.Username != "" {
		return fieldErr("source.username", "cannot be combined with the aws_* fields: the ECR token is the credential")
	}
	return nil
}

func isPEMCertificate(text string) bool {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return false
	}
	_, err := x509.ParseCertificate(block.Bytes)
	return err == nil
}

func (v Version) validate() error {
	if !strings.HasPrefix(v.Digest, "sha256:") || len(v.Digest) != len("sha256:")+64 {
		return fieldErr("version.digest", "expected sha256:<64 hex digits>, got %q", v.Digest)
	}
	return nil
}

func (p InParams) validate() error {
	switch p.Format {
	case "", "oci", "oci-layout", "rootfs":
	default:
		return fieldErr("params.format", "expected oci, oci-layout or rootfs, got %q", p.Format)
	}
	return nil
}

// notes says which source fields are accepted with no effect: none today (max_concurrent_downloads
// bounds the parallel layer fetches of a get).
func (s Source) notes() []string {
	return nil
}

// preferImageSource keeps one of the params naming the image to push, the one docker-image-resource
// uses: load, then build, load_file, import_file and pull_repository. It clears the others and
// returns a note for each. image, this resource's own, combines with none (validate refuses it).
func (p *OutParams) preferImageSource() []string {
	if p.Image != "" {
		return nil
	}
	sources := []struct {
		name  string
		value *string
	}{{"load", &p.Load}, {"build", &p.Build}, {"load_file", &p.LoadFile}, {"import_file", &p.ImportFile}, {"pull_repository", &p.PullRepository}}
	var chosen string
	var notes []string
	for _, s := range sources {
		switch {
		case *s.value == "":
		case chosen == "":
			chosen = s.name
		default:
			notes = append(notes, fmt.Sprintf("params.%s: ignored: params.%s is used instead, as docker-image-resource does", s.name, chosen))
			*s.value = ""
		}
	}
	return notes
}

func (p OutParams) validate() error {
	if p.PullRepository != "" {
		return fieldErr("params.pull_repository", "not supported (deprecated in docker-image-resource): get the image with save: true and push it with params.load")
	}
	sources := []struct{ name, value string }{
		{"build", p.Build}, {"image", p.Image}, {"load", p.Load}, {"load_file", p.LoadFile}, {"import_file", p.ImportFile},
	}
	var set []string
	for _, s := range sources {
		if s.value != "" {
			set = append(set, s.name)
		}
	}
	switch {
	case len(set) == 0:
		return fieldErr("params", "one of build, image, load, load_file or import_file is required")
	case len(set) > 1:
		return fieldErr("params."+set[1], "cannot be combined with params.%s", set[0])
	}
	if p.Target != "" && p.TargetName != "" && p.Target != p.TargetName {
		return fieldErr("params.target", "conflicts with params.target_name (%q vs %q)", p.Target, p.TargetName)
	}
	switch p.ManifestFormat {
	case "", "oci", "docker":
	default:
		return fieldErr("params.manifest_format", "expected oci or docker, got %q", p.ManifestFormat)
	}
	switch p.StorageDriver {
	case "", "overlay", "vfs":
	default:
		return fieldErr("params.storage_driver", "expected overlay or vfs, got %q", p.StorageDriver)
	}
	if p.Platform != nil && *p.Platform != RunningPlatform() {
		if p.Build == "" {
			return fieldErr("params.platform", "only a build can be for another platform than the running one (%s), got %s", RunningPlatform(), p.Platform)
		}
		if p.Platform.OS != "linux" {
			return fieldErr("params.platform", "expected a linux platform, got %s", p.Platform)
		}
	}
	if err := validatePlatforms(p); err != nil {
		return err
	}
	for id, s := range p.Secrets {
		if (s.Env == "") == (s.Source == "") {
			return fieldErr("params.secrets."+id, "expected exactly one of env or source")
		}
	}
	if p.CacheTTL != "" {
		if _, err := time.ParseDuration(p.CacheTTL); err != nil {
			return fieldErr("params.cache_ttl", "expected a duration such as 168h, got %q", p.CacheTTL)
		}
	}
	if p.CacheMounts != nil && (p.CacheMounts.All || len(p.CacheMounts.IDs) > 0) && p.CacheRepo == "" && len(p.CacheMountsFrom) == 0 {
		return fieldErr("params.cache_mounts", "needs params.cache_repo (or cache_mounts_from) to keep the mounts in")
	}
	if p.TagPrefix != "" && !ValidTag(p.TagPrefix+"x") {
		return fieldErr("params.tag_prefix", "expected tag characters, got %q", p.TagPrefix)
	}
	if p.Version != "" {
		if _, err := semver.StrictNewVersion(strings.TrimPrefix(p.Version, "v")); err != nil && p.BumpAliases {
			return fieldErr("params.version", "expected a semantic version with bump_aliases, got %q", p.Version)
		}
		if !ValidTag(p.Version) {
			return fieldErr("params.version", "expected a tag-compatible version, got %q", p.Version)
		}
	}
	return nil
}

// validatePlatforms checks params.platforms: a build's, without platform, linux ones, each once.
func validatePlatforms(p OutParams) error {
	if p.Platforms == nil {
		return nil
	}
	switch {
	case len(p.Platforms) == 0:
		return fieldErr("params.platforms", "expected at least one platform such as linux/arm64")
	case p.Build == "":
		return fieldErr("params.platforms", "needs params.build: only a build can make a multi-platform image")
	case p.Platform != nil:
		return fieldErr("params.platforms", "cannot be combined with params.platform")
	}
	seen := map[string]bool{}
	for i, pl := range p.Platforms {
		field := fmt.Sprintf("params.platforms[%d]", i)
		if pl.OS != "linux" {
			return fieldErr(field, "expected a linux platform, got %s", pl)
		}
		if seen[pl.String()] {
			return fieldErr(field, "%s is listed twice", pl)
		}
		seen[pl.String()] = true
	}
	return nil
}

// Target is the stage to build, from target_name or its alias target.
func (p OutParams) TargetStage() string {
	if p.TargetName != "" {
		return p.TargetName
	}
	return p.Target
}
