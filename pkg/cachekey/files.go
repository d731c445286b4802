package cachekey

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/openshift/imagebuilder"
)

// contextFiles hashes what COPY and ADD read from the build context, skipping what the ignore
// file excludes, as buildah does. Hashes cover each entry's path, type, permission bits and
// content (or link target), not its times or owner: buildah copies context files as root and
// its own layer cache ignores times too.
type contextFiles struct {
	root   string
	ignore *patternmatcher.PatternMatcher // nil when there is no ignore file
	memo   map[string]string              // context-relative path -> entry hash
}

// newContextFiles finds the ignore file the way buildah does: <Dockerfile>.containerignore or
// <Dockerfile>.dockerignore, else .containerignore or .dockerignore at the context's root.
func newContextFiles(root, dockerfile string) (*contextFiles, error) {
	c := &contextFiles{root: root, memo: map[string]string{}}
	candidates := []string{
		dockerfile + ".dockerignore", dockerfile + ".containerignore",
		filepath.Join(root, ".containerignore"), filepath.Join(root, ".dockerignore"),
	}
	if dockerfile == "" {
		candidates = candidates[2:]
	}
	for _, path := range candidates {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ignore file: %w", err)
		}
		patterns, err := imagebuilder.ParseIgnoreReader(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading ignore file %s: %w", path, err)
		}
		if c.ignore, err = patternmatcher.New(patterns); err != nil {
			return nil, fmt.Errorf("ignore file %s: %w", path, err)
		}
		break
	}
	return c, nil
}

// sources hashes the context entries that the sources (paths or globs relative to the context)
// name: files maps each entry's context-relative path to its hash, perSource each source to
// the hash of all its entries. A source naming nothing gets the hash of "missing" (the build
// will fail on it anyway).
func (c *contextFiles) sources(srcs []string) (files, perSource map[string]string, err error) {
	files, perSource = map[string]string{}, map[string]string{}
	for _, src := range srcs {
		entries, err := c.source(src)
		if err != nil {
			return nil, nil, err
		}
		maps.Copy(files, entries)
		perSource[src] = digestOf(entries)
	}
	return files, perSource, nil
}

func (c *contextFiles) source(src string) (map[string]string, error) {
	matches, err := filepath.Glob(filepath.Join(c.root, src))
	if err != nil {
		return nil, fmt.Errorf("COPY source %q: %w", src, err)
	}
	entries := map[string]string{}
	for _, m := range matches {
		rel, err := filepath.Rel(c.root, m)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue // outside the context: buildah refuses it
		}
		if err := c.walk(m, entries); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// walk hashes path (following a symlink at the top, as COPY does) and, for a directory,
// everything under it that the ignore file keeps. Where in doubt it hashes more than buildah
// copies: that can only turn a hit into a miss, never the reverse.
func (c *contextFiles) walk(top string, entries map[string]string) error {
	info, err := os.Stat(top)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	if !info.IsDir() {
		if rel, _ := filepath.Rel(c.root, top); c.ignored(rel) {
			return nil
		}
		return c.add(top, info, entries)
	}
	return filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		rel, _ := filepath.Rel(c.root, path)
		if rel != "." && c.ignored(rel) {
			if d.IsDir() && !c.ignore.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		return c.add(path, info, entries)
	})
}

func (c *contextFiles) ignored(rel string) bool {
	if c.ignore == nil {
		return false
	}
	// buildah's copier asks Matches, not MatchesOrParentMatches: ask the same.
	ignored, err := c.ignore.Matches(filepath.ToSlash(rel)) //nolint:staticcheck
	return err == nil && ignored
}

// add records the hash of one entry, computing it once per build.
func (c *contextFiles) add(path string, info fs.FileInfo, entries map[string]string) error {
	rel, _ := filepath.Rel(c.root, path)
	rel = filepath.ToSlash(rel)
	if h, ok := c.memo[rel]; ok {
		entries[rel] = h
		return nil
	}
	h, err := entryHash(path, info)
	if err != nil {
		return err
	}
	c.memo[rel], entries[rel] = h, h
	return nil
}

func entryHash(path string, info fs.FileInfo) (string, error) {
	mode := info.Mode()
	var desc string
	switch {
	case mode.IsDir():
		desc = fmt.Sprintf("dir %o", mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return "", fmt.Errorf("build context: %w", err)
		}
		desc = "link " + target
	case mode.IsRegular():
		sum, err := fileSHA256(path)
		if err != nil {
			return "", err
		}
		desc = fmt.Sprintf("file %o %s", mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), sum)
	default:
		desc = fmt.Sprintf("other %v", mode)
	}
	return hashString(desc), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("build context: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("build context: reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// digestOf hashes a set of path -> hash entries in path order.
func digestOf(entries map[string]string) string {
	if len(entries) == 0 {
		return hashString("missing")
	}
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(entries)) {
		fmt.Fprintf(h, "%s\x00%s\n", p, entries[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashString(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
