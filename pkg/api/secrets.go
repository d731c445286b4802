package api

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Secrets lists the source's credentials, for the output to hide: every password, and the
// "username:password" pair each is sent in (a Basic Authorization header carries its base64).
func (s Source) Secrets() []string {
	var secrets []string
	add := func(username, password string) {
		if password == "" {
			return
		}
		secrets = append(secrets, password)
		if username != "" {
			secrets = append(secrets, username+":"+password)
		}
		secrets = append(secrets, passwordLines(password)...)
	}
	add(s.Username, s.Password)
	if s.RegistryMirror != nil {
		add(s.RegistryMirror.Username, s.RegistryMirror.Password)
	}
	for _, p := range s.PrivateRegs {
		add(p.Username, p.Password)
	}
	for _, c := range s.ClientCerts {
		secrets = append(secrets, pemLines(c.Key)...)
	}
	for _, v := range []string{s.DockerConfigJSON, s.AWSSecretAccessKey, s.AWSSessionToken} {
		if v != "" {
			secrets = append(secrets, v)
		}
	}
	secrets = append(secrets, dockerConfigSecrets(s.DockerConfigJSON)...)
	return secrets
}

// passwordLines are the lines of a password of several lines (a GCR key file), four bytes or
// more each: the output is masked line by line.
func passwordLines(password string) []string {
	if !strings.Contains(password, "\n") {
		return nil
	}
	var lines []string
	for _, line := range strings.Split(password, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 4 {
			lines = append(lines, line)
		}
	}
	return lines
}

// pemLines are the base64 lines of a PEM key: a key is printed, if ever, line by line.
func pemLines(key string) []string {
	var lines []string
	for _, line := range strings.Split(key, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "-----") {
			lines = append(lines, line)
		}
	}
	return lines
}

// dockerConfigSecrets are the credentials of a docker config's auths: each auth, password and
// identity token, and the username:password pair an auth holds.
func dockerConfigSecrets(text string) []string {
	var cfg DockerConfig
	if text == "" || json.Unmarshal([]byte(text), &cfg) != nil {
		return nil
	}
	var secrets []string
	for _, a := range cfg.Auths {
		for _, v := range []string{a.Auth, a.Password, a.IdentityToken} {
			if v != "" {
				secrets = append(secrets, v)
			}
		}
		secrets = append(secrets, passwordLines(a.Password)...)
		if decoded, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
			if _, pass, ok := strings.Cut(string(decoded), ":"); ok && pass != "" {
				secrets = append(secrets, string(decoded), pass)
				secrets = append(secrets, passwordLines(pass)...)
			}
		}
	}
	return secrets
}
