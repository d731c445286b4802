package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSecretsListsEveryPassword(t *testing.T) {
	req, err := DecodeCheck(strings.NewReader(`{"source": {"repository": "r.example.com/app",
		"username": "u", "password": "main-pass",
		"registry_mirror": {"host": "m.example.com", "password": "mirror-pass"},
		"additional_private_registries": [{"registry": "p.example.com", "username": "p", "password": "private-pass"}, {"registry": "q.example.com"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"main-pass", "u:main-pass", "mirror-pass", "private-pass", "p:private-pass"}
	if got := req.Source.Secrets(); !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q, want %q", got, want)
	}
	if got := (Source{Username: "u"}).Secrets(); len(got) != 0 {
		t.Errorf("no password: Secrets() = %q", got)
	}
}

// TestSecretsOfNewAccessFields: a key file password's lines, client keys' base64 lines, the
// docker config's text and every credential in it, and the AWS secrets are all secrets.
func TestSecretsOfNewAccessFields(t *testing.T) {
	keyFile := "{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\nMIIEabc\\n-----END PRIVATE KEY-----\\n\"\n}"
	src := Source{
		Username: "_json_key", Password: keyFile,
		ClientCerts:        []ClientCert{{Domain: "r", Cert: "c", Key: "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKEY\n-----END EC PRIVATE KEY-----\n"}},
		DockerConfigJSON:   `{"auths":{"a.example":{"auth":"dTpjb25maWctcGFzcw=="},"b.example":{"username":"v","password":"other-pass"}}}`,
		AWSSecretAccessKey: "aws-secret", AWSSessionToken: "aws-session",
	}
	got := src.Secrets()
	for _, want := range []string{keyFile, "_json_key:" + keyFile, `"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEabc\n-----END PRIVATE KEY-----\n"`,
		"MHcCAQEEIKEY", src.DockerConfigJSON, "config-pass", "u:config-pass", "dTpjb25maWctcGFzcw==", "other-pass", "aws-secret", "aws-session"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() lacks %q: %q", want, got)
		}
	}
}

// TestDockerConfigJSONRefusals: what the resource cannot use fails naming the field.
func TestDockerConfigJSONRefusals(t *testing.T) {
	for config, want := range map[string]string{
		`not json`:                                      "source.docker_config_json: expected the JSON text of a docker config.json",
		`{"credsStore":"desktop"}`:                      "source.docker_config_json: credsStore and credHelpers are not supported",
		`{"auths":{"r.example":{}}}`:                    `source.docker_config_json: auths["r.example"]: expected auth, or username and password`,
		`{"auths":{"r.example":{"identitytoken":"t"}}}`: `source.docker_config_json: auths["r.example"]: identitytoken`,
	} {
		text, _ := json.Marshal(config)
		_, err := DecodeCheck(strings.NewReader(`{"source":{"repository":"r","docker_config_json":` + string(text) + `}}`))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %q", config, err, want)
		}
	}
}
