package registry

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestDescribeShortensBetweenWords(t *testing.T) {
	secret := "s3ntinel-Pa55word"
	body := strings.Repeat("word ", 79) + "a-" + secret + " tail " + strings.Repeat("more ", 1000)
	terr := &transport.Error{StatusCode: http.StatusForbidden, Errors: []transport.Diagnostic{{Code: "DENIED", Message: body}}}
	got := describe(terr).Error()
	if len(got) > maxRegistryText+20 || !strings.HasPrefix(got, "DENIED: word word") || !strings.HasSuffix(got, "[...] (HTTP 403)") {
		t.Errorf("describe gave %d bytes: %q", len(got), got)
	}
	if strings.Contains(got, secret[:3]) {
		t.Errorf("a piece of the word holding the secret is shown: %q", got)
	}
	if !errors.Is(describe(terr), terr) {
		t.Error("the shortened error does not wrap the registry's")
	}
	if got := describe(&transport.Error{StatusCode: 500, Errors: []transport.Diagnostic{{Code: "UNKNOWN", Message: "short\nand split"}}}).Error(); got != "UNKNOWN: short and split (HTTP 500)" {
		t.Errorf("short message: %q", got)
	}
}
