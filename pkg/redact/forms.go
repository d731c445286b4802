package redact

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
)

// minFragment is the shortest base64 fragment masked on its own: shorter ones would mask
// innocent text, and belong to secrets short enough to be masked as they are.
const minFragment = 6

// Forms lists what secret may look like in output: itself; its base64, standard and URL-safe,
// whole and as found inside the base64 of a longer text (as in a Basic Authorization header,
// base64("user:password")) at each of the three alignments; its URL and JSON escapes. An empty
// secret has no forms.
func Forms(secret string) []string {
	if secret == "" {
		return nil
	}
	forms := []string{secret}
	forms = append(forms, base64.StdEncoding.EncodeToString([]byte(secret)), base64.URLEncoding.EncodeToString([]byte(secret)))
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(secret)))
		for offset := range 3 {
			if f := embedded(enc, secret, offset); len(f) >= minFragment {
				forms = append(forms, f)
			}
		}
	}
	forms = append(forms, url.QueryEscape(secret), url.PathEscape(secret), jsonEscape(secret, true), jsonEscape(secret, false))
	return unique(forms)
}

// embedded is the part of the base64 of a text holding secret at byte offset (mod 3) that
// depends on the secret alone, whatever comes before and after it.
func embedded(enc *base64.Encoding, secret string, offset int) string {
	s := enc.EncodeToString([]byte(strings.Repeat("\x00", offset) + secret))
	start := 0
	if offset > 0 {
		start = offset + 1 // these characters mix the bytes before the secret with its own
	}
	end := len(s)
	if (offset+len(secret))%3 != 0 {
		end-- // the last character mixes the secret's last bits with what follows
	}
	if end <= start {
		return ""
	}
	return s[start:end]
}

// jsonEscape is s as a JSON string shows it, without the quotes; html escapes <, > and & too.
func jsonEscape(s string, html bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		return s
	}
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b.String()), `"`), `"`)
}

func unique(list []string) []string {
	seen := map[string]bool{}
	out := list[:0]
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
