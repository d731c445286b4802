package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// failsWith is a case's expected one-line error.
type failsWith string

// TestValuesAsDockerImageResourceTakesThem: YAML numbers and booleans where text is read, and
// ((vars)) strings where booleans or numbers are read, as docker-image-resource (jq -r) took them.
func TestValuesAsDockerImageResourceTakesThem(t *testing.T) {
	cases := []struct {
		field string // source.<key>, params.<key> (a put) or get.<key> (a get's params)
		value string // the JSON value
		want  any    // the decoded Go value, or failsWith
	}{
		// Strings take numbers, as written.
		{"source.tag", `3.7`, "3.7"},
		{"source.tag", `3.70`, "3.70"},
		{"source.tag", `10`, "10"},
		{"source.variant", `12345`, "12345"},
		{"source.password", `1e3`, "1e3"},
		{"params.cache_tag", `2.0`, "2.0"},
		{"params.tag_prefix", `1`, "1"},
		{"params.target_name", `2`, "2"},
		{"params.load_tag", `1.36`, "1.36"},
		{"params.tag", `7`, "7"}, // docker-image-resource's old name of tag_file: a path
		{"params.cache_from", `["cache", 2]`, []string{"cache", "2"}},
		{"params.secrets", `{"s":{"env":1}}`, map[string]Secret{"s": {Env: "1"}}},
		// ...but not booleans, objects or lists.
		{"source.tag", `true`, failsWith("source.tag: expected a string, got bool")},
		{"source.tag", `{"name":"x"}`, failsWith("source.tag: expected a string, got object")},
		{"params.dockerfile", `["a"]`, failsWith("params.dockerfile: expected a string, got array")},
		{"params.cache_from", `[{}]`, failsWith("params.cache_from[0]: expected a string, got object")},
		// Maps of strings take numbers and booleans as their text.
		{"params.build_args", `{"N":2,"FLAG":true,"OFF":false,"V":3.70,"S":"x"}`,
			map[string]string{"N": "2", "FLAG": "true", "OFF": "false", "V": "3.70", "S": "x"}},
		{"params.labels", `{"version":1.0,"release":true}`, map[string]string{"version": "1.0", "release": "true"}},
		{"params.build_args", `{"N":{"x":1}}`, failsWith("params.build_args.N: expected a string, got object")},
		{"params.labels", `{"L":[1]}`, failsWith("params.labels.L: expected a string, got array")},
		{"params.build_args", `["N=1"]`, failsWith("params.build_args: expected an object of strings, got array")},
		// Booleans take "true" and "false", in any case.
		{"params.cache", `"true"`, true},
		{"params.cache", `true`, true},
		{"params.no_cache", `"true"`, true},
		{"params.tag_as_latest", `"True"`, true},
		{"params.squash", `"FALSE"`, false},
		{"params.offline", `"false"`, false},
		{"params.bump_aliases", `"true"`, true},
		{"params.cache_mounts", `"true"`, &CacheMounts{All: true}},
		{"source.insecure", `"true"`, true},
		{"source.debug", `"false"`, false},
		{"source.pre_releases", `"TRUE"`, true},
		{"get.skip_download", `"false"`, false},
		{"get.save", `"true"`, true},
		{"get.rootfs", `"true"`, true},
		{"params.cache", `"yes"`, failsWith(`params.cache: expected true or false, got "yes"`)},
		{"params.cache", `""`, failsWith(`params.cache: expected true or false, got ""`)},
		{"params.cache", `1`, failsWith("params.cache: expected true or false, got number")},
		{"params.cache", `{}`, failsWith("params.cache: expected true or false, got object")},
		{"get.skip_download", `"no"`, failsWith(`params.skip_download: expected true or false, got "no"`)},
		{"source.insecure", `[true]`, failsWith("source.insecure: expected true or false, got array")},
		// Integers take strings of digits.
		{"source.max_concurrent_uploads", `"3"`, 3},
		{"source.max_concurrent_downloads", `4`, 4},
		{"source.max_concurrent_uploads", `"three"`, failsWith(`source.max_concurrent_uploads: expected a whole number, got "three"`)},
		{"source.max_concurrent_uploads", `"2.5"`, failsWith(`source.max_concurrent_uploads: expected a whole number, got "2.5"`)},
		{"source.max_concurrent_uploads", `true`, failsWith("source.max_concurrent_uploads: expected a number, got bool")},
		// Keys are still checked.
		{"params.cahce", `"true"`, failsWith("params.cahce: unknown field")},
		{"source.insecure_registry", `"r"`, failsWith("source.insecure_registry: unknown field")},
	}
	for _, c := range cases {
		t.Run(c.field+"="+c.value, func(t *testing.T) {
			got, err := decodeOneField(c.field, c.value)
			if want, ok := c.want.(failsWith); ok {
				if err == nil || err.Error() != string(want) {
					t.Fatalf("got error %v (value %#v), want %q", err, got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("decoded %#v, want %#v", got, c.want)
			}
		})
	}
}

// TestEveryScalarFieldIsLenient walks the request types, so a field added later gets the same rules.
func TestEveryScalarFieldIsLenient(t *testing.T) {
	for _, v := range []any{&Source{}, &InParams{}, &OutParams{}, &Secret{}, &Mirror{}, &Private{}} {
		typ := reflect.TypeOf(v).Elem()
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			var value, want string
			switch typ.Field(i).Type.Kind() {
			case reflect.Bool:
				value, want = `"True"`, "true"
			case reflect.String:
				value, want = `12.50`, "12.50"
			case reflect.Int:
				value, want = `"12"`, "12"
			default:
				continue
			}
			target := reflect.New(typ)
			if err := decodeStrict([]byte(`{"`+name+`":`+value+`}`), "x", target.Interface()); err != nil {
				t.Errorf("%s.%s = %s: %v", typ.Name(), name, value, err)
				continue
			}
			if got := reflect.ValueOf(target.Elem().Field(i).Interface()); strings.TrimSpace(fmtValue(got)) != want {
				t.Errorf("%s.%s = %s decoded as %v, want %s", typ.Name(), name, value, got, want)
			}
		}
	}
}

// decodeOneField decodes a request with the one field set and returns that field's Go value.
func decodeOneField(field, value string) (any, error) {
	part, key, _ := strings.Cut(field, ".")
	digest := `"version":{"digest":"sha256:` + strings.Repeat("a", 64) + `"}`
	switch part {
	case "source":
		req, err := DecodeOut(strings.NewReader(`{"source":{"repository":"r","` + key + `":` + value + `},"params":{"build":"b"}}`))
		return fieldValue(req.Source, key), err
	case "get":
		req, err := DecodeIn(strings.NewReader(`{"source":{"repository":"r"},` + digest + `,"params":{"` + key + `":` + value + `}}`))
		return fieldValue(req.Params, key), err
	default:
		req, err := DecodeOut(strings.NewReader(`{"source":{"repository":"r"},"params":{"build":"b","cache_repo":"r/c","` + key + `":` + value + `}}`))
		if key == "tag" {
			key = "tag_file"
		}
		return fieldValue(req.Params, key), err
	}
}

// fieldValue is the value of the struct field with this JSON name.
func fieldValue(v any, key string) any {
	val := reflect.ValueOf(v)
	for i := range val.NumField() {
		if name, _, _ := strings.Cut(val.Type().Field(i).Tag.Get("json"), ","); name == key {
			return val.Field(i).Interface()
		}
	}
	return nil
}

func fmtValue(v reflect.Value) string {
	data, _ := json.Marshal(v.Interface())
	return strings.Trim(string(data), `"`)
}
