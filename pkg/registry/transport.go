package registry

import (
	"context"
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
		if reason != "" && !replayable(req) {
			return resp, err // a streamed upload: the write retries it whole (see uploadRetry)
		}
		if reason == "" || attempt >= t.policy.Attempts || waited+wait > t.policy.Budget {
			if err != nil {
				return resp, &finalError{err}
			}
			if req.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
				resp.Body = &resumingBody{t: t, req: req, body: resp.Body, size: resp.ContentLength}
			}
			return resp, nil
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

// resumingBody goes on with a download cut short by a transient fault: it asks again for the
// rest (a Range request), or skips what it already has when the registry sends the whole body.
type resumingBody struct {
	t       *retryTransport
	req     *http.Request
	body    io.ReadCloser
	size    int64 // -1 when unknown
	read    int64
	retries int
}

func (b *resumingBody) Read(p []byte) (int, error) {
	for {
		n, err := b.body.Read(p)
		b.read += int64(n)
		if err == nil || err == io.EOF || !transient(err) || b.retries+1 >= b.t.policy.Attempts {
			return n, err
		}
		if resumeErr := b.resume(err); resumeErr != nil {
			return n, resumeErr
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (b *resumingBody) resume(cause error) error {
	b.retries++
	wait := b.t.policy.Initial << (b.retries - 1)
	b.t.log.Warnf("registry: GET %s cut short after %d bytes (%v); retry %d/%d in %s",
		b.req.URL.Path, b.read, cause, b.retries, b.t.policy.Attempts-1, wait)
	if err := sleep(b.req.Context(), wait); err != nil {
		return err
	}
	b.body.Close()
	body, err := b.rest()
	if err != nil {
		return fmt.Errorf("resume %s: %w", b.req.URL.Path, errors.Join(cause, err))
	}
	b.body = body
	return nil
}

// rest asks for the bytes not read yet: by range, else the whole body with the start skipped.
func (b *resumingBody) rest() (io.ReadCloser, error) {
	ranged := b.req.Clone(b.req.Context())
	if b.size > 0 {
		ranged.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", b.read, b.size-1))
	} else {
		ranged.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.read))
	}
	resp, err := b.t.RoundTrip(ranged)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusPartialContent {
		return resp.Body, nil
	}
	resp.Body.Close()
	if resp, err = b.t.RoundTrip(b.req.Clone(b.req.Context())); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, errors.New(resp.Status)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, b.read); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
}

func (b *resumingBody) Close() error { return b.body.Close() }

// finalError is a request error this transport has already retried, or will not: nothing above
// it should retry it again.
type finalError struct{ err error }

func (e *finalError) Error() string { return e.err.Error() }
func (e *finalError) Unwrap() error { return e.err }

// uploadRetry says which errors go-containerregistry's write retries by sending a blob again:
// transient faults of streamed uploads, which the transport cannot replay.
func uploadRetry(log logrus.FieldLogger) func(error) bool {
	return func(err error) bool {
		var final *finalError
		if errors.As(err, &final) || !transient(err) {
			return false
		}
		log.Warnf("registry: upload failed (%v); sending the blob again", err)
		return true
	}
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
