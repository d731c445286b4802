package dockerfile

import (
	"fmt"
	"strconv"
	"strings"
)

// CacheMount is a RUN --mount=type=cache of a Dockerfile.
type CacheMount struct {
	ID       string // the id= given, else the target, as buildah keys its cache directories
	Target   string
	UID, GID int
	Line     int
}

// CacheMounts lists the cache mounts of every RUN in the Dockerfile, once per id and owner.
func CacheMounts(dockerfile []byte) ([]CacheMount, error) {
	ast, _, err := parse(dockerfile)
	if err != nil {
		return nil, err
	}
	var mounts []CacheMount
	seen := map[string]bool{}
	for _, node := range ast.Children {
		if node.Value != "run" {
			continue
		}
		for _, flag := range node.Flags {
			spec, ok := strings.CutPrefix(flag, "--mount=")
			if !ok {
				continue
			}
			m, isCache, err := parseCacheMount(spec)
			if err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: %w", node.StartLine, err)
			}
			key := fmt.Sprintf("%s:%d:%d", m.ID, m.UID, m.GID)
			if isCache && !seen[key] {
				seen[key] = true
				m.Line = node.StartLine
				mounts = append(mounts, m)
			}
		}
	}
	return mounts, nil
}

func parseCacheMount(spec string) (CacheMount, bool, error) {
	var m CacheMount
	isCache := false
	for _, field := range strings.Split(spec, ",") {
		key, value, _ := strings.Cut(field, "=")
		var err error
		switch key {
		case "type":
			isCache = value == "cache"
		case "id":
			m.ID = value
		case "target", "dst", "destination":
			m.Target = value
		case "uid":
			m.UID, err = strconv.Atoi(value)
		case "gid":
			m.GID, err = strconv.Atoi(value)
		}
		if err != nil {
			return m, false, fmt.Errorf("--mount %s: %s must be a number", spec, key)
		}
	}
	if isCache && m.Target == "" {
		return m, false, fmt.Errorf("--mount %s: a cache mount needs a target", spec)
	}
	if m.ID == "" {
		m.ID = m.Target
	}
	return m, isCache, nil
}
