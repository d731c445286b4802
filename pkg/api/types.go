// Package api holds the Concourse resource protocol: the requests check, in
// and out read on stdin, the responses they write on stdout, and the strict
// decoding that names the offending field in one line.
package api

// Version identifies one image: its manifest (or index) digest and the tag it was found under.
type Version struct {
	Digest string `json:"digest"`
	Tag    string `json:"tag,omitempty"`
}

// MetadataField is one name/value pair shown by Concourse next to a version.
type MetadataField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Response is what in and out write on stdout.
type Response struct {
	Version  Version         `json:"version"`
	Metadata []MetadataField `json:"metadata"`
}

// Source is the resource's configuration, shared by check, in and out.
type Source struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag,omitempty"`
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"`
	Insecure   bool   `json:"insecure,omitempty"`
	// CACerts are PEM certificates; docker-image-resource's {domain, cert} items are accepted too.
	CACerts        []CACert  `json:"ca_certs,omitempty"`
	RegistryMirror *Mirror   `json:"registry_mirror,omitempty"`
	PrivateRegs    []Private `json:"additional_private_registries,omitempty"`
	Debug          bool      `json:"debug,omitempty"`

	// ClientCerts are docker-image-resource's client certificates for mutual TLS, per registry.
	ClientCerts []ClientCert `json:"client_certs,omitempty"`
	// DockerConfigJSON is the text of a docker config.json: its "auths" give credentials per registry.
	DockerConfigJSON string `json:"docker_config_json,omitempty"`

	// AWS ECR (registry-image-resource's names): an ECR token for the repository's registry.
	AWSAccessKeyID     string   `json:"aws_access_key_id,omitempty"`
	AWSSecretAccessKey string   `json:"aws_secret_access_key,omitempty"`
	AWSSessionToken    string   `json:"aws_session_token,omitempty"`
	AWSRegion          string   `json:"aws_region,omitempty"`
	AWSRoleARN         string   `json:"aws_role_arn,omitempty"`
	AWSRoleARNs        []string `json:"aws_role_arns,omitempty"`

	TagRegex         string `json:"tag_regex,omitempty"`
	SemverConstraint string `json:"semver_constraint,omitempty"`
	Variant          string `json:"variant,omitempty"`
	PreReleases      bool   `json:"pre_releases,omitempty"`

	// registry-image-resource's: labels and manifest annotations whose key matches become get metadata.
	LabelRegex      string `json:"label_regex,omitempty"`
	AnnotationRegex string `json:"annotation_regex,omitempty"`

	// docker-image-resource fields.
	InsecureRegistries     []string `json:"insecure_registries,omitempty"`
	MaxConcurrentDownloads int      `json:"max_concurrent_downloads,omitempty"`
	MaxConcurrentUploads   int      `json:"max_concurrent_uploads,omitempty"`
}

// CACert is one trusted certificate, optionally limited to a registry host (docker-image-resource's form).
type CACert struct {
	Domain string `json:"domain,omitempty"`
	Cert   string `json:"cert"`
}

// ClientCert is a client certificate and its key (PEM) presented to one registry host.
type ClientCert struct {
	Domain string `json:"domain"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
}

// UsesECR reports whether the source asks for an ECR token (any aws_* field set).
func (s Source) UsesECR() bool {
	return s.AWSAccessKeyID != "" || s.AWSSecretAccessKey != "" || s.AWSSessionToken != "" ||
		s.AWSRegion != "" || s.AWSRoleARN != "" || len(s.AWSRoleARNs) > 0
}

// Mirror is a pull-through mirror for Docker Hub repositories.
type Mirror struct {
	Host     string `json:"host"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// Private holds credentials for another registry that a build pulls FROM images from.
type Private struct {
	Registry string `json:"registry"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// CheckRequest is check's stdin.
type CheckRequest struct {
	Source  Source   `json:"source"`
	Version *Version `json:"version"`
	Notes   []string `json:"-"` // one line each, for the log: fields accepted with no effect
}

// InRequest is in's stdin.
type InRequest struct {
	Source  Source   `json:"source"`
	Version Version  `json:"version"`
	Params  InParams `json:"params"`
	Notes   []string `json:"-"` // one line each, for the log: fields accepted with no effect
}

// InParams are the get step's params.
type InParams struct {
	Format       string    `json:"format,omitempty"` // oci (default), oci-layout, rootfs
	Platform     *Platform `json:"platform,omitempty"`
	Save         bool      `json:"save,omitempty"`          // docker-image-resource: write a docker-archive named "image"
	Rootfs       bool      `json:"rootfs,omitempty"`        // docker-image-resource: also write rootfs/
	SkipDownload bool      `json:"skip_download,omitempty"` // write only the metadata files
}

// Platform selects one image of a multi-platform index; "linux/arm64/v8" is accepted as a string.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// PlatformList is a list of platforms, each as Platform accepts it.
type PlatformList []Platform

// OutRequest is out's stdin.
type OutRequest struct {
	Source Source    `json:"source"`
	Params OutParams `json:"params"`
	// Notes are one line each, for the log: fields accepted with no effect, and params ignored
	// because docker-image-resource prefers another.
	Notes []string `json:"-"`
}

// OutParams are the put step's params. Paths are relative to the build's root directory.
type OutParams struct {
	// A ready-made image to push.
	Image          string `json:"image,omitempty"` // glob naming an OCI or docker archive
	Load           string `json:"load,omitempty"`  // dir of a get with save: true
	LoadFile       string `json:"load_file,omitempty"`
	LoadRepository string `json:"load_repository,omitempty"`
	LoadTag        string `json:"load_tag,omitempty"`
	ImportFile     string `json:"import_file,omitempty"` // rootfs tarball, becomes a one-layer image
	// docker-image-resource's deprecated pull: ignored beside another image, as there; refused alone.
	PullRepository string `json:"pull_repository,omitempty"`

	// A Dockerfile to build.
	Build          string            `json:"build,omitempty"`
	Dockerfile     string            `json:"dockerfile,omitempty"`
	BuildArgs      map[string]string `json:"build_args,omitempty"`
	BuildArgsFile  string            `json:"build_args_file,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	LabelsFile     string            `json:"labels_file,omitempty"`
	TargetName     string            `json:"target_name,omitempty"`
	Target         string            `json:"target,omitempty"`
	Secrets        map[string]Secret `json:"secrets,omitempty"`
	NoCache        bool              `json:"no_cache,omitempty"`
	Squash         bool              `json:"squash,omitempty"`
	Platform       *Platform         `json:"platform,omitempty"`
	Platforms      PlatformList      `json:"platforms,omitempty"` // one image each, pushed as one index
	LoadBase       string            `json:"load_base,omitempty"`
	LoadBases      []string          `json:"load_bases,omitempty"`
	Offline        bool              `json:"offline,omitempty"`
	ManifestFormat string            `json:"manifest_format,omitempty"` // oci (default) or docker
	StorageDriver  string            `json:"storage_driver,omitempty"`  // overlay or vfs; default: probe

	// Cache of earlier images.
	Cache         bool     `json:"cache,omitempty"`
	CacheTag      string   `json:"cache_tag,omitempty"`
	CacheFrom     []string `json:"cache_from,omitempty"`
	CacheRepo     string   `json:"cache_repo,omitempty"`
	CacheTTL      string   `json:"cache_ttl,omitempty"`
	NoCacheStages []string `json:"no_cache_stages,omitempty"`

	// RUN --mount=type=cache content kept in cache_repo (or read from gets).
	CacheMounts        *CacheMounts `json:"cache_mounts,omitempty"`
	CacheMountsMaxSize *ByteSize    `json:"cache_mounts_max_size,omitempty"`
	CacheMountsFrom    []string     `json:"cache_mounts_from,omitempty"`

	// Tags.
	TagFile        string `json:"tag_file,omitempty"`
	TagPrefix      string `json:"tag_prefix,omitempty"`
	TagAsLatest    bool   `json:"tag_as_latest,omitempty"`
	AdditionalTags string `json:"additional_tags,omitempty"`
	Version        string `json:"version,omitempty"`
	BumpAliases    bool   `json:"bump_aliases,omitempty"`
}

// CacheMounts says which cache mounts to keep: true for all, or a list of mount ids.
type CacheMounts struct {
	All bool
	IDs []string
}

// Keeps reports whether the mount with this id is kept.
func (c *CacheMounts) Keeps(id string) bool {
	if c == nil {
		return false
	}
	for _, kept := range c.IDs {
		if kept == id {
			return true
		}
	}
	return c.All
}

// ByteSize is a size in bytes, written as a number or as "500MB", "2GiB".
type ByteSize int64

// Secret is a build secret for RUN --mount=type=secret: from an environment variable or a file.
type Secret struct {
	Env    string `json:"env,omitempty"`
	Source string `json:"source,omitempty"`
}
