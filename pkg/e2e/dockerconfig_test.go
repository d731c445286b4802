package e2e

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// gcrKeyFile is shaped like a GCP service account key: GCR and Artifact Registry take it as the
// password of the user _json_key, newlines, quotes and all.
const gcrKeyFile = `{
  "type": "service_account",
  "project_id": "example-project",
  "private_key_id": "0123456789abcdef",
  "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n",
  "client_email": "ci@example-project.iam.gserviceaccount.com"
}`

// TestDockerConfigAndKeyFilePasswords: docker_config_json's auths (an "auth" entry for an
// ACR-like service principal, a username/password entry spelled as a URL for a GCR-like key file)
// reach check, in, push and the build's FROM pull, passwords intact; wrong credentials fail
// naming the entry they came from, and no password shows in the log.
func TestDockerConfigAndKeyFilePasswords(t *testing.T) {
	gcr := testharness.StartBasicAuth(t, "_json_key", gcrKeyFile)
	acr := testharness.StartBasicAuth(t, "6f1b3c1e-0000-4000-8000-000000000000", "sp.Secret~with/+=chars")
	gcr.Push(t, gcr.Ref("lib/base:1"), testharness.BusyboxImage(t))
	config := func(acrPassword string) string {
		data, _ := json.Marshal(map[string]any{"auths": map[string]any{
			acr.Host:                      map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(acr.Username + ":" + acrPassword))},
			"http://" + gcr.Host + "/v1/": map[string]string{"username": "_json_key", "password": gcrKeyFile},
		}})
		return string(data)
	}
	src := map[string]any{"repository": acr.Host + "/app", "docker_config_json": config(acr.Password),
		"insecure_registries": []string{acr.Host, gcr.Host}, "debug": true}

	work := t.TempDir()
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+gcr.Ref("lib/base:1")+"\nENV BUILT=1\n")
	resp := put(t, work, src, map[string]any{"build": "ctx"})
	if versions := check(t, src, nil); len(versions) != 1 || versions[0].Digest != resp.Version.Digest {
		t.Errorf("check = %v, want %s", versions, resp.Version.Digest)
	}

	for _, k := range []registryKind{{"gcr", gcr}, {"acr", acr}} {
		assertOnlyOwnCredentials(t, k)
	}

	src["docker_config_json"] = config("wrong-password")
	res := testharness.Run(t, "check", map[string]any{"source": src}, "")
	assertFailsInOneLine(t, "check", res, acr.Host)
	if want := `with the credentials of docker_config_json auths["` + acr.Host + `"]`; !strings.Contains(res.Stderr, want) {
		t.Errorf("the error does not say %q:\n%s", want, res.Stderr)
	}
	assertNoKeyLines(t, res.Stderr, acr.Password, "wrong-password")

	// A FROM refused inside the build names the entry too.
	src["docker_config_json"] = strings.Replace(config(acr.Password), "private_key_id", "private_key_ix", 1)
	res = testharness.Run(t, "out", map[string]any{"source": src, "params": map[string]any{"build": "ctx"}}, work)
	assertFailsInOneLine(t, "out", res, gcr.Host)
	if want := `refused, with the credentials of docker_config_json auths["http://` + gcr.Host + `/v1/"]`; !strings.Contains(res.Stderr, want) {
		t.Errorf("the error does not say %q:\n%s", want, res.Stderr)
	}
	assertNoKeyLines(t, res.Stderr, acr.Password)
}

// assertNoKeyLines: the log shows no line of the key file, nor any of the other secrets.
func assertNoKeyLines(t *testing.T, stderr string, secrets ...string) {
	t.Helper()
	for _, line := range append(strings.Split(gcrKeyFile, "\n")[1:5], secrets...) {
		if strings.Contains(stderr, strings.TrimSpace(line)) {
			t.Errorf("the log shows %q:\n%s", line, stderr)
		}
	}
}
