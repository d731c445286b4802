package api

import (
	"strings"
	"testing"
)

// TestAccessFieldRefusals: client_certs and aws_* mistakes fail naming the field.
func TestAccessFieldRefusals(t *testing.T) {
	for source, want := range map[string]string{
		`"client_certs":[{"cert":"x","key":"y"}]`:                   "source.client_certs[0].domain: required",
		`"client_certs":[{"domain":"r","cert":"x","key":"y"}]`:      "source.client_certs[0]: expected a PEM certificate (cert) and its PEM private key (key)",
		`"aws_role_arn":"a","aws_role_arns":["b"],"aws_region":"r"`: "source.aws_role_arn: cannot be combined with source.aws_role_arns",
		`"aws_access_key_id":"a","aws_region":"r"`:                  "source.aws_secret_access_key: aws_access_key_id and aws_secret_access_key go together",
		`"aws_region":"r","username":"u","password":"p"`:            "source.username: cannot be combined with the aws_* fields",
		`"aws_ecr_registry_id":"1"`:                                 "source.aws_ecr_registry_id: not supported yet",
	} {
		_, err := DecodeCheck(strings.NewReader(`{"source":{"repository":"r",` + source + `}}`))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %q", source, err, want)
		}
	}
}
