package access

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

// addDockerConfig adds the credentials of a docker config.json's auths, keyed by the host each
// entry names (a URL such as https://index.docker.io/v1/ names docker.io).
func (p *Policy) addDockerConfig(text string) error {
	cfg, err := api.ParseDockerConfig(text)
	if err != nil {
		return fmt.Errorf("source.docker_config_json: %w", err)
	}
	for _, key := range slices.Sorted(maps.Keys(cfg.Auths)) {
		cred, err := dockerAuth(cfg.Auths[key])
		if err != nil {
			return fmt.Errorf("source.docker_config_json: auths[%q]: %w", key, err)
		}
		cred.Origin = fmt.Sprintf("docker_config_json auths[%q]", key)
		if host := Normalize(key); p.creds[host].Origin == "" {
			p.creds[host] = cred
		}
	}
	return nil
}

// dockerAuth reads an entry's auth (base64 of username:password), else its username and password.
func dockerAuth(a api.DockerAuth) (Credential, error) {
	if a.Auth == "" {
		return Credential{Username: a.Username, Password: a.Password}, nil
	}
	decoded, err := base64.StdEncoding.DecodeString(a.Auth)
	if err != nil {
		return Credential{}, fmt.Errorf("auth: expected base64 of username:password")
	}
	user, pass, ok := strings.Cut(string(decoded), ":")
	if !ok || user == "" {
		return Credential{}, fmt.Errorf("auth: expected base64 of username:password")
	}
	return Credential{Username: user, Password: pass}, nil
}
