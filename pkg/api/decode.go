package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// notSupported lists fields of registry-image-resource and docker-image-resource that this
// resource does not implement, with the reason or the way round: they fail in one line instead
// of being ignored.
var notSupported = map[string]string{
	"source.aws_account_id":       "the account is read from the repository's <account>.dkr.ecr.<region>.amazonaws.com host",
	"source.aws_ecr_registry_id":  "the registry id is read from the repository's <account>.dkr.ecr.<region>.amazonaws.com host",
	"source.azure_acr":            acrSignIn,
	"source.azure_client_id":      acrSignIn,
	"source.azure_tenant_id":      acrSignIn,
	"source.azure_environment":    acrSignIn,
	"source.content_trust":        "Notary (Docker Content Trust) signing is not implemented",
	"params.content_trust":        "Notary (Docker Content Trust) signing is not implemented",
	"source.created_at_sort":      "tag_regex matches are reported in version order (all semver) or by name, never by creation time",
	"source.pre_release_prefixes": "only alpha, beta and rc suffixes are pre-releases; others are variants",
	"source.platform":             "set platform in the get's params instead",
}

const (
	acrSignIn = "ACR managed-identity sign-in is not implemented: set username and password (an ACR token)"
)

// noEffect lists docker-image-resource's fields that mean nothing here, with the reason: they
// are accepted, and a note says so.
var noEffect = map[string]string{
	"source.startup_timeout": "no Docker daemon is started",
	"params.docker_buildkit": "buildah runs RUN --mount and secrets without it",
	"params.pull_tag":        "it goes with params.pull_repository",
}

// DecodeCheck reads check's request.
func DecodeCheck(r io.Reader) (CheckRequest, error) {
	var req CheckRequest
	parts, err := split(r, "source", "version")
	if err == nil {
		req.Notes, err = dropNoEffect(parts)
	}
	if err == nil {
		err = decodeParts(parts, map[string]any{"source": &req.Source, "version": &req.Version})
	}
	if err == nil {
		err = req.Source.validate(parts["source"])
	}
	req.Notes = append(req.Notes, req.Source.notes()...)
	return req, err
}

// DecodeIn reads in's request.
func DecodeIn(r io.Reader) (InRequest, error) {
	var req InRequest
	parts, err := split(r, "source", "version", "params")
	if err == nil {
		req.Notes, err = dropNoEffect(parts)
	}
	if err == nil {
		err = decodeParts(parts, map[string]any{"source": &req.Source, "version": &req.Version, "params": &req.Params})
	}
	if err == nil {
		err = req.Source.validate(parts["source"])
	}
	if err == nil {
		err = req.Version.validate()
	}
	if err == nil {
		err = req.Params.validate()
	}
	req.Notes = append(req.Notes, req.Source.notes()...)
	return req, err
}

// DecodeOut reads out's request. Where docker-image-resource prefers one param over another, the
// same one is used, and a note names the one ignored.
func DecodeOut(r io.Reader) (OutRequest, error) {
	var req OutRequest
	var aliasNotes []string
	parts, err := split(r, "source", "params")
	if err == nil {
		req.Notes, err = dropNoEffect(parts)
	}
	if err == nil {
		parts["params"], aliasNotes, err = renameAlias(parts["params"], "tag", "tag_file")
	}
	if err == nil {
		err = decodeParts(parts, map[string]any{"source": &req.Source, "params": &req.Params})
	}
	if err == nil {
		err = req.Source.validate(parts["source"])
	}
	if err == nil {
		req.Notes = append(req.Notes, req.Source.notes()...)
		req.Notes = append(req.Notes, aliasNotes...)
		req.Notes = append(req.Notes, req.Params.preferImageSource()...)
		err = req.Params.validate()
	}
	return req, err
}

// split reads the request object and returns its top-level members; only the named ones are allowed.
func split(r io.Reader, allowed ...string) (map[string]json.RawMessage, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("request: read stdin: %w", err)
	}
	var parts map[string]json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil {
		return nil, fmt.Errorf("request: expected a JSON object: %s", describeJSONError(err))
	}
	if parts == nil {
		return nil, errors.New("request: expected a JSON object, got null")
	}
	for key := range parts {
		if !contains(allowed, key) {
			return nil, fmt.Errorf("%s: unknown field (expected %s)", key, strings.Join(allowed, ", "))
		}
	}
	return parts, nil
}

// decodeParts decodes each member strictly into its target, naming the path of any error.
func decodeParts(parts map[string]json.RawMessage, targets map[string]any) error {
	names := make([]string, 0, len(targets))
	for name := range targets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		raw, ok := parts[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := decodeStrict(raw, name, targets[name]); err != nil {
			return err
		}
	}
	return nil
}

// decodeStrict decodes data into v, refusing unknown fields, and turns errors into "path: what was expected".
// Scalars are first normalized to v's field types (see normalize).
func decodeStrict(data []byte, path string, v any) error {
	data, err := normalize(data, reflect.TypeOf(v), path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var fieldErr *FieldError
	switch {
	case errors.As(err, &fieldErr):
		return fieldErr.under(path)
	case errors.As(err, &typeErr):
		p := path
		if typeErr.Field != "" {
			p = path + "." + typeErr.Field
		}
		return fmt.Errorf("%s: expected %s, got %s", p, describeType(typeErr.Type.String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		full := path + "." + name
		if reason, ok := notSupported[full]; ok {
			return fmt.Errorf("%s: not supported yet: %s", full, reason)
		}
		return fmt.Errorf("%s: unknown field", full)
	default:
		return fmt.Errorf("%s: %s", path, describeJSONError(err))
	}
}

// dropNoEffect removes the noEffect fields of the source and params and returns a note for each.
func dropNoEffect(parts map[string]json.RawMessage) ([]string, error) {
	var notes []string
	for _, part := range []string{"source", "params"} {
		var fields map[string]json.RawMessage
		if json.Unmarshal(parts[part], &fields) != nil || fields == nil {
			continue // decodeStrict reports what is not an object
		}
		keys := make([]string, 0, len(fields))
		for key := range fields {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		dropped := false
		for _, key := range keys {
			if reason, ok := noEffect[part+"."+key]; ok {
				notes = append(notes, fmt.Sprintf("%s.%s: has no effect here (%s)", part, key, reason))
				delete(fields, key)
				dropped = true
			}
		}
		if dropped {
			raw, err := json.Marshal(fields)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", part, err)
			}
			parts[part] = raw
		}
	}
	return notes, nil
}

// renameAlias moves an old param name to its current one. With both set, the current one is
// used, as docker-image-resource does (an empty one counts as unset there too), and a note says so.
func renameAlias(raw json.RawMessage, old, current string) (json.RawMessage, []string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return raw, nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields[old] == nil {
		return raw, nil, nil // decodeStrict reports the malformed object
	}
	var notes []string
	switch string(fields[current]) {
	case "", "null", `""`:
		fields[current] = fields[old]
	default:
		notes = append(notes, fmt.Sprintf("params.%s: ignored: params.%s is used instead, as docker-image-resource does", old, current))
	}
	delete(fields, old)
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, nil, fmt.Errorf("params: %w", err)
	}
	return data, notes, nil
}

func describeType(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	default:
		return "an object"
	}
}

func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("not valid JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "not valid JSON: unexpected end of input"
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "got " + typeErr.Value
	}
	return err.Error()
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}
