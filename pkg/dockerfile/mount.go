package dockerfile

import (
	"fmt"
	"strconv"
	"strings"
)

// Mount is a RUN --mount value.
type Mount struct {
	Type     string // "bind" (the default), "cache", "secret", "tmpfs", "ssh"
	ID       string // id=; for a cache mount, the target when not given, as buildah keys its directories
	Target   string
	Source   string // source= or src=
	From     string // from=: an image or stage, unexpanded (buildah does not expand it)
	UID, GID int
	Line     int
}

// ParseMount reads a --mount value: "type=cache,id=x,target=/root/.cache".
func ParseMount(spec string) (Mount, error) {
	m := Mount{Type: "bind"}
	for _, field := range strings.Split(spec, ",") {
		key, value, _ := strings.Cut(field, "=")
		var err error
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "type":
			m.Type = value
		case "id":
			m.ID = value
		case "target", "dst", "destination":
			m.Target = value
		case "source", "src":
			m.Source = value
		case "from":
			m.From = value
		case "uid":
			m.UID, err = strconv.Atoi(value)
		case "gid":
			m.GID, err = strconv.Atoi(value)
		}
		if err != nil {
			return m, fmt.Errorf("--mount %s: %s must be a number", spec, key)
		}
	}
	if m.Type == "cache" {
		if m.Target == "" {
			return m, fmt.Errorf("--mount %s: a cache mount needs a target", spec)
		}
		if m.ID == "" {
			m.ID = m.Target
		}
	}
	return m, nil
}
