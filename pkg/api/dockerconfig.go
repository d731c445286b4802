package api

import (
	"encoding/json"
	"fmt"
)

// DockerConfig is the part of a docker config.json that gives registry credentials.
type DockerConfig struct {
	Auths map[string]DockerAuth `json:"auths"`
	// Credential helpers are programs this resource does not run: refused when set.
	CredsStore  string            `json:"credsStore,omitempty"`
	CredHelpers map[string]string `json:"credHelpers,omitempty"`
}

// DockerAuth is one "auths" entry: base64(username:password) in Auth, or Username and Password.
type DockerAuth struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// ParseDockerConfig reads a docker config.json's text; fields other than "auths" are ignored.
func ParseDockerConfig(text string) (DockerConfig, error) {
	var cfg DockerConfig
	if err := json.Unmarshal([]byte(text), &cfg); err != nil {
		return DockerConfig{}, fmt.Errorf("expected the JSON text of a docker config.json: %s", describeJSONError(err))
	}
	return cfg, nil
}
