package testharness

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Echo says how StartEcho's registry answers requests with wrong credentials.
type Echo struct {
	Status int  // the status of the answer; 401 comes with a Basic challenge
	Plain  bool // a plain text body instead of the registry API's JSON errors
}

// StartEcho starts go-containerregistry's registry (in memory, plain HTTP) behind basic auth for
// DistributionUsername and a random password (Username, Password: tests push with them). A
// request without credentials gets a Basic challenge; one with wrong credentials gets
// echo.Status and a body echoing, as a careless registry or proxy might, the Authorization
// header, the username and password it decodes from it, and the password's base64. A HEAD of
// content by digest, which could echo nothing (no body), answers 404 whatever the credentials,
// so that a push goes on to requests that have a body.
func StartEcho(t testing.TB, echo Echo) *Registry {
	t.Helper()
	password, err := randomHex(12)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Username: DistributionUsername, Password: password, Insecure: true, transport: newTransport(nil)}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(r.record(basicAuth(r.Username, password, echo, inner)))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r
}

// StartBasicAuth starts go-containerregistry's registry (in memory, plain HTTP) behind basic
// auth for username and password, which may be anything a key file holds (newlines, quotes,
// kilobytes): what GCR (_json_key) and ACR (service principals) accept. Wrong credentials get a
// 401 echoing them.
func StartBasicAuth(t testing.TB, username, password string) *Registry {
	t.Helper()
	r := &Registry{Username: username, Password: password, Insecure: true, transport: newTransport(nil)}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(r.record(basicAuth(username, password, Echo{Status: http.StatusUnauthorized}, inner)))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r
}

// basicAuth passes requests with the right credentials to next and echoes the others.
func basicAuth(username, password string, echo Echo, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		switch {
		case ok && user == username && pass == password:
			next.ServeHTTP(w, req)
		case req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/sha256:"):
			http.NotFound(w, req)
		case req.Header.Get("Authorization") == "":
			w.Header().Set("WWW-Authenticate", `Basic realm="echo"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		default:
			echoCredentials(w, req, echo)
		}
	})
}

// echoCredentials answers with echo.Status and a body repeating the request's credentials.
func echoCredentials(w http.ResponseWriter, req *http.Request, echo Echo) {
	auth := req.Header.Get("Authorization")
	user, pass, _ := req.BasicAuth()
	said := fmt.Sprintf("Authorization: %s (username %s, password %s, password in base64 %s)",
		auth, user, pass, base64.StdEncoding.EncodeToString([]byte(pass)))
	body := said + "\n"
	w.Header().Set("Content-Type", "text/plain")
	if !echo.Plain {
		data, _ := json.Marshal(map[string]any{"errors": []map[string]any{{
			"code": "DENIED", "message": "bad credentials: " + said,
			"detail": map[string]string{"authorization": auth, "username": user, "password": pass},
		}}})
		body = string(data)
		w.Header().Set("Content-Type", "application/json")
	}
	if echo.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="echo"`)
	}
	w.WriteHeader(echo.Status)
	io.WriteString(w, body)
}

// StartEchoBearer is StartEcho with token auth: the registry sends clients to its token
// endpoint, /token, which hands a random token out for the right Basic credentials (Username,
// Password). Every request bearing it gets echo.Status and a body echoing the Authorization
// header and the token. It returns the registry and the token.
func StartEchoBearer(t testing.TB, echo Echo) (*Registry, string) {
	t.Helper()
	password, err := randomHex(12)
	if err != nil {
		t.Fatal(err)
	}
	token, err := randomHex(16)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registry{Username: DistributionUsername, Password: password, Insecure: true, transport: newTransport(nil)}
	srv := httptest.NewServer(r.record(bearerAuth(r.Username, password, "tok-"+token, echo)))
	t.Cleanup(srv.Close)
	r.Host = srv.Listener.Addr().String()
	return r, "tok-" + token
}

// bearerAuth hands token out at /token and echoes it back on every other request bearing it.
func bearerAuth(username, password, token string, echo Echo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		switch {
		case req.URL.Path == "/token" && ok && user == username && pass == password:
			json.NewEncoder(w).Encode(map[string]string{"token": token, "access_token": token})
		case req.URL.Path == "/token":
			http.Error(w, "bad credentials", http.StatusUnauthorized)
		case req.Method == http.MethodHead && strings.Contains(req.URL.Path, "/sha256:"):
			http.NotFound(w, req)
		case req.Header.Get("Authorization") == "Bearer "+token:
			echoToken(w, req, token, echo)
		default:
			realm := "http://" + req.Host + "/token"
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="echo"`, realm))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
		}
	})
}

func echoToken(w http.ResponseWriter, req *http.Request, token string, echo Echo) {
	said := fmt.Sprintf("Authorization: %s (token %s)", req.Header.Get("Authorization"), token)
	if echo.Plain {
		w.WriteHeader(echo.Status)
		io.WriteString(w, said+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(echo.Status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{"code": "DENIED", "message": "not for you: " + said}}})
}
