package api

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
	}
	add(s.Username, s.Password)
	if s.RegistryMirror != nil {
		add(s.RegistryMirror.Username, s.RegistryMirror.Password)
	}
	for _, p := range s.PrivateRegs {
		add(p.Username, p.Password)
	}
	return secrets
}
