package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podium-dev/podium/internal/testnet"
)

// quick are network options that make every failure of these tests end within a few seconds.
var quick = NetworkOptions{ConnectTimeout: time.Second, ResponseTimeout: 300 * time.Millisecond, Attempts: 2, Backoff: 10 * time.Millisecond}

// The secrets that the URIs of these tests carry, which no error may show.
const (
	secretPassword  = "hunter2-password"
	secretSignature = "deadbeef-signature"
)

// secretURI adds a password and a presigned query to an http(s) URL of a test server.
func secretURI(t *testing.T, base, path string) string {
	t.Helper()
	u, err := url.Parse(base + path)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("reader", secretPassword)
	u.RawQuery = "X-Amz-Signature=" + secretSignature + "&sig=" + secretSignature
	return u.String()
}

// wantNoSecret checks that msg shows none of the secrets.
func wantNoSecret(t *testing.T, msg string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, secretPassword, secretSignature) {
		if strings.Contains(msg, s) {
			t.Errorf("%q shows the secret %q", msg, s)
		}
	}
}

// stallingServer answers nothing until the client gives up or the test ends.
func stallingServer(t *testing.T, afterHeaders bool) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if afterHeaders {
			w.Header().Set("Content-Length", "100000")
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv
}

// silentListener accepts connections and never writes to them: a TLS handshake that stalls.
func silentListener(t *testing.T) string { return testnet.SilentListener(t) }

// statusServer answers every request with status and counts the requests.
func statusServer(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestFetchHTTPFailsFastWithOneLineAndNoSecret(t *testing.T) {
	forbidden, _ := statusServer(t, http.StatusForbidden)
	missing, _ := statusServer(t, http.StatusNotFound)
	unavailable, _ := statusServer(t, http.StatusServiceUnavailable)
	noHeaders := stallingServer(t, false)
	noBody := stallingServer(t, true)
	for name, tc := range map[string]struct {
		base string
		want []string
	}{
		"an unknown host":         {"http://podium-no-such-host.invalid", []string{"cannot download the archive (", "podium-no-such-host.invalid"}},
		"a refused connection":    {fmt.Sprintf("http://127.0.0.1:%d", closedPort(t)), []string{"connection refused", "gave up after 2 attempts"}},
		"access denied":           {forbidden.URL, []string{"the server answered 403 Forbidden; check the credentials: PODIUM_HTTP_BEARER_TOKEN"}},
		"no archive there":        {missing.URL, []string{"the server answered 404 Not Found; check that the archive is at this URI"}},
		"a server in trouble":     {unavailable.URL, []string{"the server answered 503 Service Unavailable (gave up after 2 attempts)"}},
		"no answer":               {noHeaders.URL, []string{"timeout awaiting response headers", "gave up after 2 attempts"}},
		"a body that stalls":      {noBody.URL, []string{"the server stalled: nothing received for 300ms", "gave up after 2 attempts"}},
		"a handshake that stalls": {"https://" + silentListener(t), []string{"TLS handshake timeout", "gave up after 2 attempts"}},
	} {
		t.Run(name, func(t *testing.T) {
			uri, dest := secretURI(t, tc.base, "/battle/4.tar.gz"), newDest(t)
			start := time.Now()
			err := Fetch(t.Context(), uri, dest, Options{Network: quick})
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the fetch failed after %s, want within seconds", took)
			}
			wantError(t, err, append([]string{"bundle " + Redact(uri) + ": "}, tc.want...)...)
			if !strings.Contains(err.Error(), "reader:xxxxx@") || !strings.Contains(err.Error(), "X-Amz-Signature=xxxxx") {
				t.Errorf("error %q does not name the redacted URI", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans several lines", err)
			}
			wantNoSecret(t, err.Error())
			wantNothing(t, dest)
		})
	}
}

// flakyServer serves body, but answers the first failures requests with a failure of its kind.
func flakyServer(t *testing.T, failures int, fail func(w http.ResponseWriter), body []byte) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if int(n.Add(1)) <= failures {
			fail(w)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestFetchHTTPRetriesTransientFailures(t *testing.T) {
	archive := tarOf(t, writeBundle(t, seedBundle), true)
	status := func(code int) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) { w.WriteHeader(code) }
	}
	// cut sends half the archive and closes the connection.
	cut := func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", fmt.Sprint(len(archive)))
		_, _ = w.Write(archive[:len(archive)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
	for name, fail := range map[string]func(http.ResponseWriter){
		"503 Service Unavailable": status(http.StatusServiceUnavailable),
		"429 Too Many Requests":   status(http.StatusTooManyRequests),
		"a body cut short":        cut,
	} {
		t.Run(name, func(t *testing.T) {
			srv, requests := flakyServer(t, 2, fail, archive)
			dest := newDest(t)
			opts := Options{Digest: digestOf(t, seedBundle), Network: NetworkOptions{Attempts: 3, Backoff: 10 * time.Millisecond}}
			if err := Fetch(t.Context(), srv.URL+"/battle/4.tgz", dest, opts); err != nil {
				t.Fatal(err)
			}
			wantBundle(t, dest, seedBundle)
			if n := requests.Load(); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
		})
	}
	t.Run("a client error is not retried", func(t *testing.T) {
		srv, requests := statusServer(t, http.StatusNotFound)
		wantError(t, Fetch(t.Context(), srv.URL+"/b.tgz", newDest(t), Options{Network: quick}), "404")
		if n := requests.Load(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// authServer serves an archive and records the Authorization header of each request, by path.
type authServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]string
}

func newAuthServer(t *testing.T, archive []byte, redirect func(path string) string) *authServer {
	t.Helper()
	s := &authServer{seen: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen[r.URL.Path] = r.Header.Get("Authorization")
		s.mu.Unlock()
		if to := redirect(r.URL.Path); to != "" {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		_, _ = w.Write(archive)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *authServer) authorization(path string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.seen[path]
	return v, ok
}

func TestFetchHTTPCredentials(t *testing.T) {
	archive := tarOf(t, writeBundle(t, seedBundle), true)
	// other is the same host on another port: another origin, to which net/http would still
	// send the header.
	other := newAuthServer(t, archive, func(string) string { return "" })
	origin := newAuthServer(t, archive, func(path string) string {
		switch path {
		case "/moved.tgz":
			return "/battle/4.tgz"
		case "/elsewhere.tgz":
			return other.URL + "/battle/4.tgz"
		}
		return ""
	})
	for name, tc := range map[string]struct {
		creds HTTPCredentials
		want  string
	}{
		"a bearer token":          {HTTPCredentials{BearerToken: "token-123"}, "Bearer token-123"},
		"a username and password": {HTTPCredentials{Username: "reader", Password: "pw-456"}, "Basic cmVhZGVyOnB3LTQ1Ng=="},
	} {
		t.Run(name, func(t *testing.T) {
			opts := Options{HTTP: tc.creds, Network: quick}
			if err := Fetch(t.Context(), origin.URL+"/moved.tgz", newDest(t), opts); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/moved.tgz", "/battle/4.tgz"} {
				if got, _ := origin.authorization(path); got != tc.want {
					t.Errorf("the origin got Authorization %q for %s, want %q", got, path, tc.want)
				}
			}
			if err := Fetch(t.Context(), origin.URL+"/elsewhere.tgz", newDest(t), opts); err != nil {
				t.Fatal(err)
			}
			if got, ok := other.authorization("/battle/4.tgz"); !ok || got != "" {
				t.Errorf("the other origin got Authorization %q (asked: %v), want none", got, ok)
			}
		})
	}
	t.Run("both kinds at once", func(t *testing.T) {
		opts := Options{HTTP: HTTPCredentials{BearerToken: "t", Username: "u", Password: "p"}}
		wantError(t, Fetch(t.Context(), origin.URL+"/battle/4.tgz", newDest(t), opts), "either a bearer token or a username and password")
	})
}

func TestFetchHTTPSRefusesARedirectToHTTP(t *testing.T) {
	archive := tarOf(t, writeBundle(t, seedBundle), true)
	plain := serveFiles(t, map[string][]byte{"/battle/4.tgz": archive})
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/downgrade.tgz" {
			http.Redirect(w, r, plain.URL+"/battle/4.tgz?token="+secretSignature, http.StatusFound)
			return
		}
		_, _ = w.Write(archive)
	}))
	t.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	opts := Options{Network: quick, HTTP: HTTPCredentials{BearerToken: "token-123"}}
	opts.Network.rootCAs = roots

	if err := Fetch(t.Context(), secure.URL+"/battle/4.tgz", newDest(t), opts); err != nil {
		t.Fatalf("https without a redirect: %v", err)
	}
	dest := newDest(t)
	err := Fetch(t.Context(), secure.URL+"/downgrade.tgz", dest, opts)
	wantError(t, err, "refusing the redirect from https to http (", "token=xxxxx", "publish the archive at an https URL")
	wantNoSecret(t, err.Error(), "token-123")
	wantNothing(t, dest)
}

// dirArchive is an uncompressed tar of n directory entries and nothing else.
func dirArchive(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%07d/", i), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// countingServer serves body at every path and reports, once its handler is done, how many
// bytes it sent.
func countingServer(t *testing.T, body []byte) (*httptest.Server, <-chan int64) {
	t.Helper()
	sent := make(chan int64, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(w, bytes.NewReader(body))
		sent <- n
	}))
	t.Cleanup(srv.Close)
	return srv, sent
}

func TestFetchHTTPArchiveLimitsCountEverything(t *testing.T) {
	t.Run("directory entries count towards --max-files, and the rest is not read", func(t *testing.T) {
		archive := dirArchive(t, 48<<20/512) // 48 MiB of directory entries
		srv, sent := countingServer(t, archive)
		dest := newDest(t)
		err := Fetch(t.Context(), srv.URL+"/dirs.tar", dest, Options{MaxFiles: 1, MaxBytes: 1 << 10, Network: quick})
		wantError(t, err, "the archive holds more than 1 entries (files, directories and links all count)", "--max-files")
		wantNothing(t, dest)
		select {
		case n := <-sent:
			if n == int64(len(archive)) {
				t.Errorf("the server sent the whole archive, %d bytes", n)
			}
		case <-time.After(10 * time.Second):
			t.Error("the server is still sending")
		}
	})
	t.Run("the compressed stream is bounded", func(t *testing.T) {
		// Empty gzip members decompress to nothing, however many there are.
		var member bytes.Buffer
		zw := gzip.NewWriter(&member)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		archive := bytes.Repeat(member.Bytes(), 4<<20/member.Len())
		srv, _ := countingServer(t, archive)
		dest := newDest(t)
		err := Fetch(t.Context(), srv.URL+"/empty.tar.gz", dest, Options{MaxFiles: 1, MaxBytes: 1 << 10, Network: quick})
		wantError(t, err, "the archive is larger than", "--max-size 1024 and --max-files 1 allow")
		wantNothing(t, dest)
	})
	t.Run("an archive without regular files is not installed", func(t *testing.T) {
		srv := serveFiles(t, map[string][]byte{"/dirs.tar": dirArchive(t, 3)})
		dest := newDest(t)
		wantError(t, Fetch(t.Context(), srv.URL+"/dirs.tar", dest, Options{Network: quick}), "the archive holds no regular files")
		wantNothing(t, dest)
	})
}

func TestFetchTimeoutNamesItsCause(t *testing.T) {
	srv := stallingServer(t, false)
	cause := errors.New("the fetch took longer than --timeout 200ms")
	ctx, cancel := context.WithTimeoutCause(t.Context(), 200*time.Millisecond, cause)
	defer cancel()
	dest := newDest(t)
	err := Fetch(ctx, srv.URL+"/b.tgz", dest, Options{Network: NetworkOptions{ResponseTimeout: time.Hour}})
	wantError(t, err, "bundle "+srv.URL+"/b.tgz: the fetch took longer than --timeout 200ms")
	if !errors.Is(err, cause) {
		t.Errorf("error %q does not wrap the context's cause", err)
	}
	wantNothing(t, dest)
}

func TestRedact(t *testing.T) {
	for uri, want := range map[string]string{
		"https://user:pass@example.com/b/4.tgz":                        "https://user:xxxxx@example.com/b/4.tgz",
		"https://token@example.com/b/4.tgz":                            "https://xxxxx@example.com/b/4.tgz",
		"https://example.com/b/4.tgz?X-Amz-Signature=abc&X-Amz-Date=1": "https://example.com/b/4.tgz?X-Amz-Signature=xxxxx&X-Amz-Date=xxxxx",
		"https://example.com/b/4.tgz?sv=1&sig=abc%2F#frag":             "https://example.com/b/4.tgz?sv=xxxxx&sig=xxxxx#xxxxx",
		"https://example.com/b/4.tgz?secret-token":                     "https://example.com/b/4.tgz?xxxxx",
		"s3://bucket/battle/4/":                                        "s3://bucket/battle/4/",
		"https://user:p%zz@example.com/b/4.tgz?sig=abc":                "https://xxxxx@example.com/b/4.tgz?xxxxx",
	} {
		if got := Redact(uri); got != want {
			t.Errorf("Redact(%q) = %q, want %q", uri, got, want)
		}
	}
	_, err := ParseURI("https://user:p%zz@example.com/b/4.tgz")
	wantError(t, err, "bundle https://xxxxx@example.com/b/4.tgz: not a URI")
	wantNoSecret(t, err.Error(), "user:p")
}

func TestRedactErrorRewritesURLErrors(t *testing.T) {
	inner := &url.Error{Op: "Get", URL: "https://u:" + secretPassword + "@example.com/b.tgz?sig=" + secretSignature, Err: io.EOF}
	err := redactError(fmt.Errorf("bundle: %w; also %s", inner, "see https://example.com/x?sig="+secretSignature))
	wantNoSecret(t, err.Error())
	if !errors.Is(err, io.EOF) {
		t.Errorf("%v does not unwrap to its cause", err)
	}
	if ue, _ := errors.AsType[*url.Error](err); ue == nil || strings.Contains(ue.Error(), secretPassword) {
		t.Errorf("the *url.Error %v keeps the password", ue)
	}
}
