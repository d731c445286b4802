// Package kvfile reads maps of strings from the files pipelines hand to a put: build_args_file
// and labels_file, written as a JSON object, a YAML mapping, or KEY=VALUE lines. Its errors
// quote the file (a key, the YAML parser's words) only for a file inside the work dir.
package kvfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/imagesmith/buildah-image-resource/pkg/volume"
)

// Error is a parse error. Its message never holds the file's text; Detailed may, quoting Quoted.
type Error struct {
	Msg      string // without the file's text
	Detailed string // with Quoted, for a file that may be quoted
	Quoted   string
}

func (e *Error) Error() string { return e.Msg }

// Read reads and parses the file the param field names, through the volume (volume.ReadFile,
// volume.MaxParamFile). Errors name the field and the path.
func Read(v volume.Volume, field, name string) (map[string]string, error) {
	f, err := v.ReadFile(field, name, volume.MaxParamFile)
	if err != nil {
		return nil, err
	}
	out, err := Parse(f.Data)
	if err == nil {
		return out, nil
	}
	msg := err.Error()
	if pe, ok := err.(*Error); ok && f.Quotable(pe.Quoted) {
		msg = pe.Detailed
	}
	return nil, fmt.Errorf("%s: %s: %s", field, name, msg)
}

// Parse reads a JSON object, a YAML mapping or KEY=VALUE lines (blank lines and # comments skipped).
// Values must be scalars; numbers and booleans become their text.
func Parse(data []byte) (map[string]string, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return map[string]string{}, nil
	}
	if trimmed[0] == '{' {
		return parseJSON(trimmed)
	}
	if looksLikeKeyValue(trimmed) {
		return parseLines(trimmed)
	}
	return parseStructured(trimmed, "a YAML mapping or KEY=VALUE lines")
}

// parseJSON reads a file that starts with '{' as JSON only, as docker-image-resource (jq) did:
// YAML's flow style ("{foo}") is refused, not read as {"foo": null}.
func parseJSON(data []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	err := dec.Decode(&raw)
	if err == nil && dec.More() {
		err = fmt.Errorf("data after the object at byte %d", dec.InputOffset())
	}
	if err != nil {
		msg := "expected a JSON object"
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			msg = fmt.Sprintf("%s: not valid JSON at byte %d", msg, syntax.Offset)
		}
		return nil, &Error{Msg: msg, Detailed: msg} // nothing of the file quoted
	}
	return stringValues(raw)
}

func parseStructured(data []byte, what string) (map[string]string, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		msg := "expected " + what
		detail := strings.TrimPrefix(firstLine(err.Error()), "error converting YAML to JSON: ")
		return nil, &Error{Msg: msg, Detailed: msg + ": " + detail, Quoted: detail} // the parser may quote the text
	}
	return stringValues(raw)
}

// stringValues turns a decoded object's scalar values into strings.
func stringValues(raw map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(raw))
	for key, value := range raw {
		switch v := value.(type) {
		case string:
			out[key] = v
		case bool, float64, int64, json.Number:
			out[key] = fmt.Sprint(v)
		case nil:
			out[key] = ""
		default:
			msg := "expected a string, number or boolean value"
			return nil, &Error{Msg: msg + " for every key", Detailed: key + ": " + msg, Quoted: key}
		}
	}
	return out, nil
}

// looksLikeKeyValue: every meaningful line has '=' before any ':' (YAML would use ': ').
func looksLikeKeyValue(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		eq, colon := strings.Index(line, "="), strings.Index(line, ":")
		if eq <= 0 || (colon >= 0 && colon < eq) {
			return false
		}
	}
	return true
}

func parseLines(data []byte) (map[string]string, error) {
	out := map[string]string{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; scanner.Scan(); n++ {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", n)
		}
		out[key] = unquote(strings.TrimSpace(value))
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return v[1 : len(v)-1]
	}
	return v
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
