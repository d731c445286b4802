package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/testharness"
)

// TestECRTokenFromAssumedRoles: with aws_* fields, check gets an ECR token from a fake of the ECR
// and STS APIs (with the source's keys, or the environment's when it has none), after assuming
// each of aws_role_arns in turn, each call signed (SigV4) by the keys
// of the step before for the right service and region; the registry gets the token's password
// as user AWS, and the log never shows it, debug on.
func TestECRTokenFromAssumedRoles(t *testing.T) {
	reg := testharness.StartDistributionAs(t, "AWS")
	digest := reg.Push(t, reg.Ref("app:latest"), testharness.BusyboxImage(t))
	aws := testharness.StartFakeAWS(t, reg.Password)
	keys := map[string]any{"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "example-secret"}
	fromEnv := []string{"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=example-secret"}
	for _, tc := range []struct {
		name  string
		roles map[string]any
		env   []string // the keys from the environment instead of the source
	}{
		{"keys only", keys, nil},
		{"aws_role_arn", with(keys, "aws_role_arn", "arn:aws:iam::123456789012:role/one"), nil},
		{"aws_role_arns", with(keys, "aws_role_arns", []string{"arn:aws:iam::123456789012:role/one", "arn:aws:iam::210987654321:role/two"}), nil},
		{"keys from the environment", map[string]any{"aws_role_arn": "arn:aws:iam::123456789012:role/one"}, fromEnv},
	} {
		roles := tc.roles
		t.Run(tc.name, func(t *testing.T) {
			before := len(aws.Calls())
			src := map[string]any{"repository": reg.Host + "/app", "ca_certs": []string{reg.CACertPEM}, "debug": true, "aws_region": "eu-west-3"}
			for k, v := range roles {
				src[k] = v
			}
			res := testharness.Run(t, "check", map[string]any{"source": src}, "", append(aws.Env(), tc.env...)...)
			if res.ExitCode != 0 || !strings.Contains(string(res.Stdout), digest.String()) {
				t.Fatalf("check: exit %d, stdout %s", res.ExitCode, res.Stdout)
			}
			if strings.Contains(res.Stderr, reg.Password) || strings.Contains(res.Stderr, "example-secret") {
				t.Errorf("the log shows the token's password or the secret key:\n%s", res.Stderr)
			}
			calls := aws.Calls()[before:]
			want := []string{"AssumeRole", "AssumeRole", "GetAuthorizationToken"}[2-countRoles(roles):]
			if len(calls) != len(want) {
				t.Fatalf("AWS calls %+v, want %v", calls, want)
			}
			key := "AKIDEXAMPLE"
			for i, c := range calls {
				service := map[string]string{"AssumeRole": "sts", "GetAuthorizationToken": "ecr"}[c.Operation]
				prefix := "AWS4-HMAC-SHA256 Credential=" + key + "/"
				if c.Operation != want[i] || !strings.HasPrefix(c.Authorization, prefix) || !strings.Contains(c.Authorization, "/eu-west-3/"+service+"/aws4_request") {
					t.Errorf("call %d: %s signed %q; want %s signed by %s for %s in eu-west-3", i, c.Operation, c.Authorization, want[i], key, service)
				}
				if c.Operation == "AssumeRole" {
					key = "ASIAROLE" + strconv.Itoa(before+i+1)
				}
			}
		})
	}
}

// TestECRTokenReachesTheBuild: the ECR token is the credential of the repository's registry for
// the build too: a FROM image and cache_repo there are read and written with it.
func TestECRTokenReachesTheBuild(t *testing.T) {
	reg := testharness.StartDistributionAs(t, "AWS")
	reg.Push(t, reg.Ref("base:1"), testharness.BusyboxImage(t))
	aws := testharness.StartFakeAWS(t, reg.Password)
	src := map[string]any{"repository": reg.Host + "/app", "ca_certs": []string{reg.CACertPEM},
		"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "example-secret", "aws_region": "eu-west-3"}
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "ctx/Dockerfile"), "FROM "+reg.Ref("base:1")+"\nENV BUILT=1\n")
	put(t, work, src, map[string]any{"build": "ctx", "cache_repo": reg.Ref("cache")}, aws.Env()...)
	assertServed(t, registryKind{"ecr", reg}, "/v2/base/", true)
	assertServed(t, registryKind{"ecr", reg}, "/v2/cache/", true)
	assertOnlyOwnCredentials(t, registryKind{"ecr", reg})
}

// with is a copy of m with one more key.
func with(m map[string]any, key string, value any) map[string]any {
	out := map[string]any{key: value}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func countRoles(roles map[string]any) int {
	switch r := roles["aws_role_arns"].(type) {
	case []string:
		return len(r)
	}
	if roles["aws_role_arn"] != nil {
		return 1
	}
	return 0
}
