// Package registry is the resource's go-containerregistry door to registries: it reads digests,
// tags and images and writes images and tags, with retries, as the access policy (pkg/access)
// says for credentials, trust and mirrors.
// It is the one package that imports go-containerregistry's remote I/O.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sirupsen/logrus"

	"github.com/imagesmith/buildah-image-resource/pkg/access"
)

// Client talks to one repository, and to the mirror for Docker Hub repositories, as the
// source's access policy says: each registry gets its own credentials and TLS settings.
type Client struct {
	repo   name.Repository
	mirror *name.Repository // Docker Hub repositories only: tried first for reads
	opts   []remote.Option
	mOpts  []remote.Option
	policy *access.Policy
	log    logrus.FieldLogger
	sent   *atomic.Int64 // bytes of blob uploads sent to the repository's registry
}

// New makes a client for a repository (the source's, a FROM image's, cache_repo...).
func New(ctx context.Context, policy *access.Policy, repository string, log logrus.FieldLogger, opts ...Option) (*Client, error) {
	set := newSettings(opts)
	repo, err := policy.Repository(repository)
	if err != nil {
		return nil, err
	}
	sent := &atomic.Int64{}
	remoteOpts, err := options(ctx, policy, repo.RegistryStr(), log, set, sent)
	if err != nil {
		return nil, err
	}
	c := &Client{repo: repo, opts: remoteOpts, policy: policy, log: log, sent: sent}
	if m := policy.Mirror(); m != "" && access.Normalize(repo.RegistryStr()) == "docker.io" {
		mirrorRepo, err := policy.Repository(m + "/" + repo.RepositoryStr())
		if err != nil {
			return nil, fmt.Errorf("source.registry_mirror.host: %w", err)
		}
		c.mirror = &mirrorRepo
		if c.mOpts, err = options(ctx, policy, m, log, set, &atomic.Int64{}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// options are the remote options for one registry; sent counts the blob bytes uploaded to it.
func options(ctx context.Context, policy *access.Policy, host string, log logrus.FieldLogger, set settings, sent *atomic.Int64) ([]remote.Option, error) {
	base, err := policy.Transport(host)
	if err != nil {
		return nil, err
	}
	rt := &retryTransport{next: base, policy: DefaultRetry, log: log}
	opts := []remote.Option{
		remote.WithContext(ctx),
		policy.RemoteAuth(),
		remote.WithTransport(hideCredentials{next: limitManifests{next: countUploads{next: rt, sent: sent}}, hide: set.hide}),
		remote.WithUserAgent("buildah-image-resource"),
		// The transport retries requests; go-containerregistry retries only what the transport
		// could not: streamed blob uploads, sent again whole.
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 4}),
		remote.WithRetryPredicate(uploadRetry(log)),
		remote.WithRetryStatusCodes(),
	}
	// One puller for every read of this client: the registry is pinged and the token fetched
	// once per run, not once per tag or manifest; its limiter bounds the downloads.
	readOpts := opts
	if set.downloads > 0 {
		readOpts = append(slices.Clone(opts), remote.WithJobs(set.downloads))
	}
	puller, err := remote.NewPuller(readOpts...)
	if err != nil {
		return nil, err
	}
	if set.uploads > 0 {
		opts = append(opts, remote.WithJobs(set.uploads))
	}
	return append(opts, remote.Reuse(puller)), nil
}

// Uploaded is the number of blob bytes this client has sent: what the registry did not have.
func (c *Client) Uploaded() int64 { return c.sent.Load() }

// Name is the repository as the registry knows it, e.g. registry.example.com/team/app.
func (c *Client) Name() string { return c.repo.Name() }

// Repo is the parsed repository.
func (c *Client) Repo() name.Repository { return c.repo }

// Head returns the descriptor the tag points to, or nil when the tag or repository does not exist.
func (c *Client) Head(tag string) (*v1.Descriptor, error) {
	var desc *v1.Descriptor
	err := c.read(func(repo name.Repository, opts []remote.Option) error {
		ref := repo.Tag(tag)
		d, err := remote.Head(ref, opts...)
		if err != nil && !isNotFound(err) {
			// A HEAD error has no body, and some registries refuse HEAD on manifests: GET says more.
			var full *remote.Descriptor
			if full, err = remote.Get(ref, opts...); err == nil {
				d = &full.Descriptor
			}
		}
		desc = d
		return err
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolve %s:%s: %w", c.repo.Name(), tag, c.describe(err))
	}
	return desc, nil
}

// Tags lists the repository's tags; a missing repository has none.
func (c *Client) Tags() ([]string, error) {
	var tags []string
	err := c.read(func(repo name.Repository, opts []remote.Option) (err error) {
		tags, err = remote.List(repo, opts...)
		return err
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", c.repo.Name(), c.describe(err))
	}
	return tags, nil
}

// Fetched is a manifest read by digest: the image for the requested platform and, when the
// digest names an index, the whole index. Blobs are read lazily.
type Fetched struct {
	Image v1.Image
	Index v1.ImageIndex // nil for a plain image
}

// Get fetches the manifest or index with the digest, resolving an index to the platform's image.
func (c *Client) Get(digest string, platform v1.Platform) (*Fetched, error) {
	var desc *remote.Descriptor
	err := c.read(func(repo name.Repository, opts []remote.Option) (err error) {
		desc, err = remote.Get(repo.Digest(digest), append(opts, remote.WithPlatform(platform))...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %s@%s: %w", c.repo.Name(), digest, c.describe(err))
	}
	f := &Fetched{}
	if desc.MediaType.IsIndex() {
		if f.Index, err = desc.ImageIndex(); err != nil {
			return nil, fmt.Errorf("read index %s@%s: %w", c.repo.Name(), digest, err)
		}
	}
	if f.Image, err = desc.Image(); err != nil {
		return nil, fmt.Errorf("image for %s in %s@%s: %w", platform.String(), c.repo.Name(), digest, describe(err))
	}
	if err := checkConfigSize(f.Image); err != nil {
		return nil, fmt.Errorf("fetch %s@%s: %w", c.repo.Name(), digest, err)
	}
	return f, nil
}

// read runs fn against the mirror first (when there is one), then the repository itself.
func (c *Client) read(fn func(name.Repository, []remote.Option) error) error {
	if c.mirror != nil {
		err := fn(*c.mirror, c.mOpts)
		if err == nil {
			return nil
		}
		c.log.Infof("registry mirror %s: %v; falling back to %s", c.mirror.RegistryStr(), describe(err), c.repo.RegistryStr())
	}
	return fn(c.repo, c.opts)
}

// Push writes the image or index and then points every tag at it. Blobs the registry has are not
// sent again (HEAD first, cross-repository mount for layers of the same registry); the manifest is
// written by digest only after every blob is in, and tags only after that, so no tag ever names
// an incomplete image. progress, when not nil, gets the upload's updates and is closed by the
// time Push returns, whatever happened.
func (c *Client) Push(img remote.Taggable, tags []string, progress chan<- v1.Update) (v1.Hash, error) {
	digest, err := digestOf(img)
	if err != nil {
		closeUpdates(progress)
		return v1.Hash{}, err
	}
	opts := c.opts
	if progress != nil {
		opts = append(append([]remote.Option{}, opts...), remote.WithProgress(progress))
	}
	byDigest := c.repo.Digest(digest.String())
	switch t := img.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(byDigest, t, opts...)
	case v1.Image:
		err = remote.Write(byDigest, t, opts...)
	default:
		closeUpdates(progress)
		err = fmt.Errorf("cannot push %T", img)
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", byDigest, c.describe(err))
	}
	for _, tag := range tags {
		if err := remote.Tag(c.repo.Tag(tag), img, c.opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("tag %s:%s: %w", c.repo.Name(), tag, c.describe(err))
		}
	}
	return digest, nil
}

// closeUpdates closes a progress channel that no write got to close.
func closeUpdates(progress chan<- v1.Update) {
	if progress != nil {
		close(progress)
	}
}

func digestOf(t remote.Taggable) (v1.Hash, error) {
	raw, err := t.RawManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("read manifest: %w", err)
	}
	h, _, err := v1.SHA256(strings.NewReader(string(raw)))
	return h, err
}

func isNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// maxRegistryText bounds the text of a registry's error response shown in a message.
const maxRegistryText = 400

// describe shortens a registry's error to its first diagnostic, or the start of its body.
func describe(err error) error {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	if len(terr.Errors) > 0 {
		return &shortError{msg: fmt.Sprintf("%s (HTTP %d)", shorten(terr.Errors[0].String()), terr.StatusCode), err: err}
	}
	return &shortError{msg: shorten(err.Error()), err: err}
}

// describe is describe for this client's registry: a refusal (401, 403) says what was sent, as
// the access policy knows it, e.g. "with the credentials of additional_private_registries[1]".
func (c *Client) describe(err error) error {
	short := describe(err)
	var terr *transport.Error
	if !errors.As(err, &terr) || (terr.StatusCode != http.StatusUnauthorized && terr.StatusCode != http.StatusForbidden) {
		return short
	}
	host := c.repo.RegistryStr()
	return &shortError{msg: fmt.Sprintf("%s (%s: HTTP %d %s)", short.Error(), host, terr.StatusCode, c.policy.Tried(host)), err: err}
}

// shortError is a registry's error, shortened; it wraps the whole one.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// shorten puts s on one line and keeps its first words up to maxRegistryText bytes. It cuts
// between words so that no secret is cut short: a secret's start could not be masked.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxRegistryText {
		return s
	}
	cut := strings.LastIndexByte(s[:maxRegistryText+1], ' ')
	return strings.TrimSpace(s[:max(cut, 0)]) + " [...]"
}

// MountFrom marks the layers of img named in sources (layer digest -> the reference of an image
// holding it) as mountable, when that image's repository is on the client's registry: a push then
// links those blobs instead of uploading them.
func (c *Client) MountFrom(img v1.Image, sources map[v1.Hash]string) v1.Image {
	from := map[v1.Hash]name.Reference{}
	for digest, ref := range sources {
		r, err := name.ParseReference(ref)
		if err == nil && r.Context().RegistryStr() == c.repo.RegistryStr() && r.Context().Name() != c.repo.Name() {
			from[digest] = r
		}
	}
	if len(from) == 0 {
		return img
	}
	return mountable{Image: img, from: from}
}

type mountable struct {
	v1.Image
	from map[v1.Hash]name.Reference
}

func (m mountable) Layers() ([]v1.Layer, error) {
	layers, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(layers))
	for i, l := range layers {
		out[i] = l
		if digest, err := l.Digest(); err == nil && m.from[digest] != nil {
			out[i] = &remote.MountableLayer{Layer: l, Reference: m.from[digest]}
		}
	}
	return out, nil
}
