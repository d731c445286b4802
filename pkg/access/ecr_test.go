package access

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/imagesmith/buildah-image-resource/pkg/api"
)

func TestDecodeECRToken(t *testing.T) {
	c, err := decodeECRToken(base64.StdEncoding.EncodeToString([]byte("AWS:pass:word")), "h")
	if err != nil || c.Username != "AWS" || c.Password != "pass:word" {
		t.Errorf("decodeECRToken = %+v, %v", c, err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("no-colon"))} {
		if _, err := decodeECRToken(bad, "h"); err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("decodeECRToken(%q) = %v", bad, err)
		}
	}
}

// TestECRNeedsARegion: a repository whose host names no ECR region needs aws_region.
func TestECRNeedsARegion(t *testing.T) {
	_, err := New(context.Background(), api.Source{Repository: "registry.example/app", AWSAccessKeyID: "a", AWSSecretAccessKey: "s"}, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "source.aws_region: required") {
		t.Errorf("New = %v", err)
	}
	if m := ecrHost.FindStringSubmatch("123456789012.dkr.ecr.eu-west-3.amazonaws.com"); m == nil || m[1] != "123456789012" || m[2] != "eu-west-3" {
		t.Errorf("ecrHost match = %q", m)
	}
}
