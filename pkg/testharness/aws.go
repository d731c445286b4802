package testharness

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// FakeAWS answers ECR's GetAuthorizationToken (a token for "AWS" and Password) and STS's
// AssumeRole (temporary keys ASIAROLE1, ASIAROLE2, ... in turn), recording every call, for
// the SDK pointed at it by AWS_ENDPOINT_URL_ECR and AWS_ENDPOINT_URL_STS (see Env).
type FakeAWS struct {
	URL      string
	Password string // the token's password

	mu    sync.Mutex
	calls []AWSCall
}

// AWSCall is one request the fake answered.
type AWSCall struct {
	Operation     string // "GetAuthorizationToken" or "AssumeRole"
	Authorization string // the SigV4 Authorization header
	RoleArn       string // AssumeRole's RoleArn
}

// StartFakeAWS starts the fake; it is stopped by t.Cleanup.
func StartFakeAWS(t testing.TB, password string) *FakeAWS {
	t.Helper()
	f := &FakeAWS{Password: password}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Env points the AWS SDK at the fake and away from any file or instance metadata of the machine.
func (f *FakeAWS) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_ECR=" + f.URL, "AWS_ENDPOINT_URL_STS=" + f.URL,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_REGION=", "AWS_DEFAULT_REGION=",
	}
}

// Calls are the requests answered so far, in order.
func (f *FakeAWS) Calls() []AWSCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AWSCall{}, f.calls...)
}

func (f *FakeAWS) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	call := AWSCall{Authorization: req.Header.Get("Authorization")}
	if target := req.Header.Get("X-Amz-Target"); target != "" {
		call.Operation = target[strings.LastIndexByte(target, '.')+1:]
	} else if form, err := url.ParseQuery(string(body)); err == nil {
		call.Operation, call.RoleArn = form.Get("Action"), form.Get("RoleArn")
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	n := len(f.calls)
	f.mu.Unlock()
	switch call.Operation {
	case "GetAuthorizationToken":
		token := base64.StdEncoding.EncodeToString([]byte("AWS:" + f.Password))
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{
			{"authorizationToken": token, "expiresAt": 4102444800, "proxyEndpoint": "https://example.invalid"},
		}})
	case "AssumeRole":
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAROLE%d</AccessKeyId><SecretAccessKey>role-secret-%d</SecretAccessKey><SessionToken>role-session-%d</SessionToken><Expiration>2100-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>%s</Arn><AssumedRoleId>AROA:ci</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`, n, n, n, call.RoleArn)
	default:
		http.Error(w, "unknown operation", http.StatusBadRequest)
	}
}
