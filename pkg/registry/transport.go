package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// RetryPolicy bounds the retries of transient registry faults.
type RetryPolicy struct {
	Attempts int           // tries in all, the first included
	Initial  time.Duration // first backoff, doubled after each try
	Max      time.Duration // cap on one wait, Retry-After included
	Budget   time.Duration // cap on the time spent waiting for one request
}

// DefaultRetry is what check, in and out use: 6 tries over at most about two minutes.
var DefaultRetry = RetryPolicy{Attempts: 6, Initial: 500 * time.Millisecond, Max: 30 * time.Second, Budget: 2 * time.Minute}

// retryTransport retries requests that failed for a transient reason: 429 (honouring
// Retry-After), 5xx, connection resets and unexpected EOFs. A request whose body cannot be
// replayed is sent once.
type retryTransport struct {
	next   http.RoundTripper
	policy RetryPolicy
	log    logrus.FieldLogger
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var waited time.Duration
	for attempt := 1; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		wait, reason := t.retryAfter(attempt, resp, err)
		if reason == "" || attempt >= t.policy.Attempts || waited+wait > t.policy.Budget || !replayable(req) {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t.log.Warnf("registry: %s %s: %s; retry %d/%d in %s", req.Method, req.URL.Path, reason, attempt, t.policy.Attempts-1, wait.Round(time.Millisecond))
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		waited += wait
		if req, err = rewind(req); err != nil {
			return nil, err
		}
	}
}

// retryAfter says how long to wait before the next try and why, or "" when the outcome is final.
func (t *retryTransport) retryAfter(attempt int, resp *http.Response, err error) (time.Duration, string) {
	backoff := t.policy.Initial << (attempt - 1)
	if backoff > t.policy.Max || backoff <= 0 {
		backoff = t.policy.Max
	}
	switch {
	case err != nil && transient(err):
		return backoff, err.Error()
	case err != nil:
		return 0, ""
	case resp.StatusCode == http.StatusTooManyRequests:
		if secs, convErr := strconv.Atoi(resp.Header.Get("Retry-After")); convErr == nil && secs >= 0 {
			wait := time.Duration(secs) * time.Second
			return min(wait, t.policy.Max), "429 Too Many Requests"
		}
		return backoff, "429 Too Many Requests"
	case resp.StatusCode == http.StatusInternalServerError, resp.StatusCode == http.StatusBadGateway,
		resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusGatewayTimeout:
		return backoff, resp.Status
	}
	return 0, ""
}

func transient(err error) bool {
	var netErr net.Error
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("replay request body: %w", err)
	}
	clone := req.Clone(req.Context())
	clone.Body = body
	return clone, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// newTransport is an HTTP transport trusting the system roots plus extra PEM certificates,
// skipping verification only when insecure is set (for the one registry it is built for).
func newTransport(caCerts []string, insecure bool, policy RetryPolicy, log logrus.FieldLogger) (http.RoundTripper, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for i, pemText := range caCerts {
		if !pool.AppendCertsFromPEM([]byte(pemText)) {
			return nil, fmt.Errorf("source.ca_certs[%d]: expected a PEM certificate", i)
		}
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: pool, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // only for registries the user marked insecure
	return &retryTransport{next: base, policy: policy, log: log}, nil
}
