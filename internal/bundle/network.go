package bundle

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of NetworkOptions.
const (
	DefaultConnectTimeout  = 10 * time.Second
	DefaultResponseTimeout = time.Minute
	DefaultAttempts        = 4
	DefaultBackoff         = time.Second
	// maxBackoff caps the doubling waits between attempts.
	maxBackoff = 30 * time.Second
)

// NetworkOptions bound the waits and retries of every scheme but file://. Zero fields take the
// defaults. The whole fetch is bounded by its context: `manager fetch --timeout`.
type NetworkOptions struct {
	// ConnectTimeout bounds opening a connection, name resolution included (DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// ResponseTimeout bounds the TLS handshake, the wait for a response's headers and any pause
	// while a body is read: a stalled server fails after it (DefaultResponseTimeout).
	ResponseTimeout time.Duration
	// Attempts is how many times a request that fails transiently (connection refused or reset,
	// a timeout, HTTP 408, 429 or 5xx) is made, the first included (DefaultAttempts).
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each next one up to 30s
	// (DefaultBackoff).
	Backoff time.Duration

	// rootCAs replaces the system's roots in tests.
	rootCAs *x509.CertPool
}

func (n NetworkOptions) withDefaults() NetworkOptions {
	if n.ConnectTimeout <= 0 {
		n.ConnectTimeout = DefaultConnectTimeout
	}
	if n.ResponseTimeout <= 0 {
		n.ResponseTimeout = DefaultResponseTimeout
	}
	if n.Attempts <= 0 {
		n.Attempts = DefaultAttempts
	}
	if n.Backoff <= 0 {
		n.Backoff = DefaultBackoff
	}
	return n
}

// maxBackoff is the longest wait between two attempts.
func (n NetworkOptions) maxBackoff() time.Duration { return max(n.Backoff, maxBackoff) }

// transport is an HTTP transport with the timeouts, for every client the fetch makes.
func (n NetworkOptions) transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: n.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = n.ResponseTimeout
	t.ResponseHeaderTimeout = n.ResponseTimeout
	if n.rootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: n.rootCAs, MinVersion: tls.VersionTLS12}
	}
	return t
}

// transientError marks a failure that another attempt may not meet.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// permanentError marks a failure not to try again, such as one a store's client has retried.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// isTransient tells whether err is worth another attempt: a refused, reset or timed-out
// connection, a name server that did not answer, or an answer marked transient.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if _, ok := errors.AsType[*permanentError](err); ok {
		return false
	}
	if _, ok := errors.AsType[*transientError](err); ok {
		return true
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); ok {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, errStalled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if netErr, ok := errors.AsType[net.Error](err); ok && netErr.Timeout() {
		return true
	}
	return false
}

// transientStatus tells whether an HTTP status is worth another attempt.
func transientStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// withRetries calls attempt until it succeeds, fails for good, or has been called n.Attempts times,
// waiting n.Backoff, then twice as long, and so on, in between. The last error says how many
// attempts were made when there were several.
func withRetries(ctx context.Context, n NetworkOptions, attempt func(ctx context.Context) error) error {
	wait := n.Backoff
	for i := 1; ; i++ {
		err := attempt(ctx)
		if err == nil || !isTransient(err) || ctx.Err() != nil {
			return err
		}
		if i == n.Attempts {
			if i > 1 {
				return fmt.Errorf("%w (gave up after %d attempts)", err, i)
			}
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, n.maxBackoff())
	}
}

// errStalled is the cause of a request that got no answer, or no more of its body, in time.
var errStalled = errors.New("the server stalled")

// watchBody returns a context derived from ctx for a request, and a function that wraps the
// request's body. The context ends with the cause errStalled when the request has not returned
// within first, or when a read of the wrapped body makes no progress for each: clients read a
// body through the request's context, so this bounds what their own timeouts, which end at the
// response's headers, do not. stop releases the context.
func watchBody(ctx context.Context, first, each time.Duration) (_ context.Context, wrap func(io.Reader) io.Reader, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var period atomic.Int64
	period.Store(int64(first))
	timer := time.AfterFunc(first, func() {
		cancel(fmt.Errorf("%w: nothing received for %s", errStalled, time.Duration(period.Load())))
	})
	wrap = func(r io.Reader) io.Reader {
		period.Store(int64(each))
		timer.Reset(each)
		return &watchedReader{r: r, timer: timer, each: each, ctx: ctx}
	}
	stop = func() {
		timer.Stop()
		cancel(nil)
	}
	return ctx, wrap, stop
}

type watchedReader struct {
	r     io.Reader
	timer *time.Timer
	each  time.Duration
	ctx   context.Context
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.timer.Reset(w.each)
	if err != nil && err != io.EOF {
		if cause := context.Cause(w.ctx); errors.Is(cause, errStalled) {
			return n, cause
		}
		// A body cut short is worth another attempt. The same error from a decompressor or
		// the tar reader above this one means a truncated archive, which is not.
		if errors.Is(err, io.ErrUnexpectedEOF) || isTransient(err) {
			return n, &transientError{err}
		}
	}
	return n, err
}

// limitError says that a stream is longer than a limit.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// capReader fails with err once more than limit bytes have been read from r, instead of
// reading all that a server sends.
type capReader struct {
	r     io.Reader
	n     int64
	limit int64
	err   error
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n > c.limit {
		return 0, c.err
	}
	if rest := c.limit + 1 - c.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return 0, c.err
	}
	return n, err
}
