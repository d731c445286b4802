package access

import (
	"fmt"
	"regexp"
	"strings"
)

// containersRef finds the registry host of a containers/image reference in an error.
var containersRef = regexp.MustCompile(`docker://([^/\s"']+)/`)

// Explain adds to an error of containers/image (the build's pulls and pushes) in which a
// registry refused the request what was sent to it, as the policy knows it: e.g. "(gcr.io:
// refused, with the credentials of additional_private_registries[0])". Other errors are returned
// as they are.
func (p *Policy) Explain(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	m := containersRef.FindStringSubmatch(text)
	if m == nil || !refused(text) {
		return err
	}
	return fmt.Errorf("%w (%s: refused, %s)", err, m[1], p.Tried(m[1]))
}

// refused reports whether an error's text says a registry turned the credentials down.
func refused(text string) bool {
	text = strings.ToLower(text)
	for _, word := range []string{"unauthorized", "authentication required", "denied", "status 401", "status 403", "invalid username/password"} {
		if strings.Contains(text, word) {
			return true
		}
	}
	return false
}
