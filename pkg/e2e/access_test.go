package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// registryKind is one way a registry lets clients in, and how a source reaches it.
type registryKind struct {
	name string
	reg  *testharness.Registry
}

// basic is the Authorization header a client sends with the registry's own credentials.
func (k registryKind) basic() string {
	if k.reg.Username == "" {
		return ""
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(k.reg.Username+":"+k.reg.Password))
}

// accessSource is the source of a pipeline reaching every kind, for a repository on own: own's
// credentials as username/password, the others' in additional_private_registries after a decoy
// for own's port on "localhost" (another host), each CA for its own host only (ca_certs with a
// domain), the mutual-TLS registry's client certificate, and the anonymous one insecure by CIDR.
func accessSource(kinds []registryKind, own registryKind, repo string) map[string]any {
	src := map[string]any{"repository": own.reg.Host + "/" + repo}
	_, port, _ := net.SplitHostPort(own.reg.Host)
	private := []map[string]string{{"registry": "localhost:" + port, "username": "decoy", "password": "decoy-password"}}
	var cas, clientCerts []map[string]string
	for _, k := range kinds {
		switch {
		case k.reg.Username == "":
		case k.name == own.name:
			src["username"], src["password"] = k.reg.Username, k.reg.Password
		default:
			private = append(private, map[string]string{"registry": k.reg.Host, "username": k.reg.Username, "password": k.reg.Password})
		}
		if k.reg.CACertPEM != "" {
			cas = append(cas, map[string]string{"domain": k.reg.Host, "cert": k.reg.CACertPEM})
		}
		if k.reg.ClientCertPEM != "" {
			clientCerts = append(clientCerts, map[string]string{"domain": k.reg.Host, "cert": k.reg.ClientCertPEM, "key": k.reg.ClientKeyPEM})
		}
	}
	src["additional_private_registries"] = private
	src["ca_certs"], src["client_certs"] = cas, clientCerts
	src["insecure_registries"] = []string{"127.0.0.2/32"}
	return src
}

// TestAccessPolicyEveryPathEveryRegistry drives every code path that talks to a registry (check,
// in, push, FROM pull, cache_from, cache: true, cache_repo, cache mounts) against every kind of
// registry (htpasswd + TLS from the source's username/password or from
// additional_private_registries, client-certificate auth, anonymous plain HTTP matched by CIDR),
// rotating which kind serves which path. Each registry records every Authorization header: it
// must get its own credentials or none, never another's, and no path may be refused (401).
func TestAccessPolicyEveryPathEveryRegistry(t *testing.T) {
	kinds := []registryKind{
		{"htpasswd", testharness.StartDistribution(t)},
		{"private", testharness.StartDistribution(t)},
		{"mutual-tls", testharness.StartMutualTLS(t)},
		{"anonymous", testharness.StartInProcessOn(t, "127.0.0.2")},
	}
	base := testharness.BusyboxImage(t)
	for _, k := range kinds {
		k.reg.Push(t, k.reg.Ref("lib/base:1"), base)
		k.reg.ResetRequests()
	}
	for i := range kinds {
		from, cacheFrom, cacheRepo, own := kinds[i], kinds[(i+1)%4], kinds[(i+2)%4], kinds[(i+3)%4]
		name := fmt.Sprintf("push to %s, FROM %s, cache_from %s, cache_repo %s", own.name, from.name, cacheFrom.name, cacheRepo.name)
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+from.reg.Ref("lib/base:1")+"\n"+
				"RUN --mount=type=cache,id=m,target=/m sh -c 'date > /m/stamp; echo built > /built'\n")
			src := accessSource(kinds, own, "app")
			resp := put(t, work, src, map[string]any{
				"build": "ctx", "cache": true, "cache_from": []string{cacheFrom.reg.Ref("lib/cache:none")},
				"cache_repo": cacheRepo.reg.Ref("cache"), "cache_mounts": true,
			})
			versions := check(t, src, nil)
			if len(versions) != 1 || versions[0].Digest != resp.Version.Digest {
				t.Errorf("check = %v, want %s", versions, resp.Version.Digest)
			}
			dir, _ := get(t, src, api.Version{Digest: resp.Version.Digest, Tag: "latest"}, map[string]any{"skip_download": true})
			if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "digest"))); got != resp.Version.Digest {
				t.Errorf("in wrote digest %q, want %s", got, resp.Version.Digest)
			}
			assertServed(t, from, "/v2/lib/base/", true)
			assertServed(t, cacheFrom, "/v2/lib/cache/", false)
			assertServed(t, cacheRepo, "/v2/cache/", true)
			assertServed(t, own, "/v2/app/", true)
		})
	}
	for _, k := range kinds {
		assertOnlyOwnCredentials(t, k)
	}
}

// assertServed: the registry answered requests under prefix, none refused; found says whether
// some answer was a success (the path read or wrote something there).
func assertServed(t *testing.T, k registryKind, prefix string, found bool) {
	t.Helper()
	var seen, ok int
	for _, r := range k.reg.Requests() {
		if !strings.HasPrefix(r.Path, prefix) {
			continue
		}
		seen++
		if r.Status == 401 || r.Status == 403 {
			t.Errorf("%s: %s %s refused (%d)", k.name, r.Method, r.Path, r.Status)
		}
		if r.Status/100 == 2 {
			ok++
		}
	}
	if seen == 0 || (found && ok == 0) {
		t.Errorf("%s: %d requests under %s, %d successful", k.name, seen, prefix, ok)
	}
}

// assertOnlyOwnCredentials: every Authorization header the registry received is its own
// credentials, or none.
func assertOnlyOwnCredentials(t *testing.T, k registryKind) {
	t.Helper()
	own := k.basic()
	for _, r := range k.reg.Requests() {
		if r.Authorization != "" && r.Authorization != own {
			t.Errorf("%s received credentials that are not its own on %s %s: %s", k.name, r.Method, r.Path, describeAuthorization(r.Authorization))
		}
	}
}

// describeAuthorization names the user of a Basic header (never the password).
func describeAuthorization(header string) string {
	kind, value, _ := strings.Cut(header, " ")
	if decoded, err := base64.StdEncoding.DecodeString(value); err == nil && kind == "Basic" {
		user, _, _ := strings.Cut(string(decoded), ":")
		return "Basic for user " + user
	}
	return kind + " ..."
}
