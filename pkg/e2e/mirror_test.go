package e2e

import (
	"path/filepath"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestMirrorWithCredentials: a Docker Hub repository is read through registry_mirror, with the
// mirror's credentials and its CA (a ca_certs item for its domain), by check, in and a build's
// FROM busybox; the mirror receives its own credentials only (no Docker Hub is reachable here).
func TestMirrorWithCredentials(t *testing.T) {
	mirror := testharness.StartDistribution(t)
	target := testharness.StartInProcessOn(t, "127.0.0.2")
	digest := mirror.Push(t, mirror.Ref("library/busybox:1"), testharness.BusyboxImage(t))
	mirror.ResetRequests()
	access := func(repository string) map[string]any {
		return map[string]any{"repository": repository, "tag": "1",
			"registry_mirror":     map[string]string{"host": mirror.Host, "username": mirror.Username, "password": mirror.Password},
			"ca_certs":            []map[string]string{{"domain": mirror.Host, "cert": mirror.CACertPEM}},
			"insecure_registries": []string{"127.0.0.2/32"}}
	}
	hub := access("busybox")
	if versions := check(t, hub, nil); len(versions) != 1 || versions[0].Digest != digest.String() {
		t.Fatalf("check = %v, want %s", versions, digest)
	}
	get(t, hub, api.Version{Digest: digest.String(), Tag: "1"}, map[string]any{"skip_download": true})

	work := t.TempDir()
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM busybox:1\nENV BUILT=1\n")
	put(t, work, access(target.Host+"/app"), map[string]any{"build": "ctx"})
	assertServed(t, registryKind{"mirror", mirror}, "/v2/library/busybox/", true)
	assertOnlyOwnCredentials(t, registryKind{"mirror", mirror})
	assertOnlyOwnCredentials(t, registryKind{"target", target})
}
