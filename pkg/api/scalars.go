package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Concourse hands a resource its params as YAML turned into JSON: `tag: 3.7` arrives as a number
// and `cache: ((use-cache))` as the string "true". docker-image-resource read every value with
// jq -r, so it took both; normalize does the same for every field in one place, before the strict
// decode, by rewriting each scalar to the JSON type of the Go field it lands in:
//
//   - bool fields take true and false, and the strings "true" and "false" (any case);
//   - string fields take numbers, as written ("3.70" stays "3.70");
//   - map-of-string values (build_args, labels) take numbers and booleans as their text;
//   - integer fields take strings of digits.
//
// Anything else where a scalar is expected is refused in one line naming the field; objects and
// lists are walked, and their unknown keys are left for the strict decode to refuse.

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// normalize rewrites data (the JSON for a value of type t, found at path) to t's scalar types.
func normalize(data json.RawMessage, t reflect.Type, path string) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct && reflect.PointerTo(t).Implements(unmarshalerType) {
		return data, nil // a type with its own forms, such as ByteSize, reads them itself
	}
	switch t.Kind() {
	case reflect.Struct:
		return normalizeObject(data, path, func(key string) (reflect.Type, bool) { return jsonField(t, key) })
	case reflect.Map:
		if t.Elem().Kind() == reflect.String {
			return normalizeObject(data, path, nil)
		}
		return normalizeObject(data, path, func(string) (reflect.Type, bool) { return t.Elem(), true })
	case reflect.Slice:
		return normalizeList(data, t.Elem(), path)
	case reflect.String:
		return asText(data, path, false)
	case reflect.Bool:
		return asBool(data, path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return asInt(data, path)
	}
	return data, nil
}

// normalizeObject normalizes each member of a JSON object; typeOf says what a key holds (nil: text,
// booleans included, as in build_args). Anything but an object is left for the decoder to refuse.
func normalizeObject(data json.RawMessage, path string, typeOf func(string) (reflect.Type, bool)) (json.RawMessage, error) {
	if kindOf(data) != "object" {
		return data, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return data, nil // the decoder reports malformed JSON
	}
	for key, value := range members {
		var err error
		switch {
		case typeOf == nil:
			members[key], err = asText(value, join(path, key), true)
		default:
			if t, ok := typeOf(key); ok {
				members[key], err = normalize(value, t, join(path, key))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return json.Marshal(members)
}

// normalizeList normalizes each item of a JSON list.
func normalizeList(data json.RawMessage, item reflect.Type, path string) (json.RawMessage, error) {
	if kindOf(data) != "array" {
		return data, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return data, nil
	}
	for i, value := range items {
		var err error
		if items[i], err = normalize(value, item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return nil, err
		}
	}
	return json.Marshal(items)
}

// asText turns a number (and, with booleans, true or false) into a string of the same text.
func asText(data json.RawMessage, path string, booleans bool) (json.RawMessage, error) {
	switch kind := kindOf(data); {
	case kind == "string", kind == "null":
		return data, nil
	case kind == "number", kind == "bool" && booleans:
		return json.Marshal(string(bytes.TrimSpace(data)))
	default:
		return nil, fieldErr(path, "expected a string, got %s", kind)
	}
}

// asBool takes true, false, or the strings "true" and "false" in any case.
func asBool(data json.RawMessage, path string) (json.RawMessage, error) {
	switch kind := kindOf(data); kind {
	case "bool", "null":
		return data, nil
	case "string":
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fieldErr(path, "expected true or false: %v", err)
		}
		b, ok := parseBool(s)
		if !ok {
			return nil, fieldErr(path, "expected true or false, got %q", s)
		}
		return json.RawMessage(strconv.FormatBool(b)), nil
	default:
		return nil, fieldErr(path, "expected true or false, got %s", kind)
	}
}

// asInt takes a number, or a string of one whole number.
func asInt(data json.RawMessage, path string) (json.RawMessage, error) {
	switch kind := kindOf(data); kind {
	case "number", "null":
		return data, nil
	case "string":
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fieldErr(path, "expected a number: %v", err)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fieldErr(path, "expected a whole number, got %q", s)
		}
		return json.RawMessage(strconv.FormatInt(n, 10)), nil
	default:
		return nil, fieldErr(path, "expected a number, got %s", kind)
	}
}

// parseBool reads "true" or "false", in any case.
func parseBool(s string) (value, ok bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// kindOf names the JSON type data starts with, in the words of the errors.
func kindOf(data json.RawMessage) string {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return "nothing"
	}
	switch trimmed[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// jsonField finds the type of the struct field a JSON key decodes into, matching the way
// encoding/json does: the exact name first, then any case.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	var folded reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case name == "":
			name = f.Name
		}
		if name == key {
			return f.Type, true
		}
		if folded == nil && strings.EqualFold(name, key) {
			folded = f.Type
		}
	}
	return folded, folded != nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
