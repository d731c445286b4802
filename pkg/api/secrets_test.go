package api

import (
	"slices"
	"strings"
	"testing"
)

func TestSecretsListsEveryPassword(t *testing.T) {
	req, err := DecodeCheck(strings.NewReader(`{"source": {"repository": "r.example.com/app",
		"username": "u", "password": "main-pass",
		"registry_mirror": {"host": "m.example.com", "password": "mirror-pass"},
		"additional_private_registries": [{"registry": "p.example.com", "username": "p", "password": "private-pass"}, {"registry": "q.example.com"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"main-pass", "u:main-pass", "mirror-pass", "private-pass", "p:private-pass"}
	if got := req.Source.Secrets(); !slices.Equal(got, want) {
		t.Errorf("Secrets() = %q, want %q", got, want)
	}
	if got := (Source{Username: "u"}).Secrets(); len(got) != 0 {
		t.Errorf("no password: Secrets() = %q", got)
	}
}
