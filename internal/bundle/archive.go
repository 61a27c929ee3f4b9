package bundle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
)

// HTTPCredentials authenticate http(s) fetches. Set at most one kind; with neither, a password
// in the URI's userinfo is sent as basic authentication, as net/http does.
type HTTPCredentials struct {
	// BearerToken is sent as "Authorization: Bearer TOKEN".
	BearerToken string
	// Username and Password are sent as basic authentication.
	Username, Password string
}

// entryOverhead is what a tar stream may hold per entry beyond the files' bytes: a header, an
// extended (PAX or GNU long name) header for a long path, and the padding to 512 bytes.
const entryOverhead = 8 << 10

// fetchArchive downloads the .tar, .tar.gz or .tgz archive at uri and extracts it into the
// stage, again from the start when an attempt fails transiently.
func fetchArchive(ctx context.Context, uri string, opts Options, s *stage) error {
	n := opts.Network
	client := &http.Client{Transport: n.transport(), CheckRedirect: checkRedirect}
	return withRetries(ctx, n, func(ctx context.Context) error {
		if err := s.reset(); err != nil {
			return err
		}
		return downloadArchive(ctx, client, uri, opts.HTTP, n, s)
	})
}

// checkRedirect refuses a downgrade from https to http, and drops the Authorization header on a
// redirect to another origin (scheme, host or port): the credentials are for the URI's server.
// net/http keeps the header for the same host on another port, and for its subdomains.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	prev, first := via[len(via)-1], via[0]
	if prev.URL.Scheme == SchemeHTTPS && req.URL.Scheme != SchemeHTTPS {
		return fmt.Errorf("refusing the redirect from https to %s (%s), which would send the request unencrypted; "+
			"publish the archive at an https URL", req.URL.Scheme, Redact(req.URL.String()))
	}
	if req.URL.Scheme != first.URL.Scheme || req.URL.Host != first.URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// downloadArchive makes one attempt at the archive.
func downloadArchive(ctx context.Context, client *http.Client, uri string, creds HTTPCredentials, n NetworkOptions, s *stage) error {
	ctx, watch, stop := watchBody(ctx, n.requestBudget(), n.ResponseTimeout)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return err
	}
	switch {
	case creds.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+creds.BearerToken)
	case creds.Username != "":
		req.SetBasicAuth(creds.Username, creds.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if urlErr, ok := errors.AsType[*url.Error](err); ok { // its message repeats the URI
			err = urlErr.Err
		}
		return fmt.Errorf("cannot download the archive (%w); check the URI and the network", err)
	}
	defer func() { _ = resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("the server answered %s; check the credentials: PODIUM_HTTP_BEARER_TOKEN, or PODIUM_HTTP_USERNAME "+
			"and PODIUM_HTTP_PASSWORD, in spec.serving.storageSecretName", resp.Status)
	case transientStatus(resp.StatusCode):
		return &transientError{fmt.Errorf("the server answered %s", resp.Status)}
	default:
		return fmt.Errorf("the server answered %s; check that the archive is at this URI", resp.Status)
	}

	// The archive is at most the bundle plus the tar headers of its entries; gzip may add a
	// little to what does not compress.
	limit := s.maxBytes + int64(s.maxFiles+1)*entryOverhead
	tooLarge := &limitError{fmt.Sprintf("the archive is larger than %d bytes, the most that --max-size %d "+
		"and --max-files %d allow; check the URI, or raise the limits if the bundle is that large", limit, s.maxBytes, s.maxFiles)}
	var r io.Reader = &capReader{r: watch(resp.Body), limit: limit + limit/64, err: tooLarge}
	if path := strings.ToLower(resp.Request.URL.Path); strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".tgz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return archiveReadError(err, "; is it gzip-compressed, as its name says?")
		}
		defer func() { _ = zr.Close() }()
		r = &capReader{r: zr, limit: limit, err: tooLarge}
	}
	return extractTar(r, s)
}

// archiveReadError describes an error met reading the archive; hint follows a format error.
func archiveReadError(err error, hint string) error {
	if limit, ok := errors.AsType[*limitError](err); ok {
		return limit
	}
	if isTransient(err) {
		return &transientError{fmt.Errorf("reading the archive: %w", err)}
	}
	return fmt.Errorf("reading the archive: %w%s", err, hint)
}

// streamError passes on an error of writing a member: the archive's limit as it is, a
// transient failure of the download marked for another attempt.
func streamError(err error) error {
	if limit, ok := errors.AsType[*limitError](err); ok {
		return limit
	}
	if isTransient(err) {
		return &transientError{err}
	}
	return err
}

// extractTar writes the regular files of a tar stream into the stage, and fails when there are none.
func extractTar(r io.Reader, s *stage) error {
	if err := extractEntries(r, s, false); err != nil {
		return err
	}
	// An archive without files would install an empty bundle, which no model server can load:
	// the failure would surface later, in the predictor, far from its cause.
	if s.files == 0 {
		return errors.New("the archive holds no regular files; archive the bundle with `tar -czf bundle.tar.gz -C DIR .`")
	}
	return nil
}

// extractEntries writes the regular files of a tar stream into the stage. It refuses members
// that would land outside the bundle (absolute paths, '..') and links or devices, which a bundle
// does not hold; directories need no entry of their own. Every entry counts towards the stage's
// file limit, so that an archive of endless directory entries fails as soon as it passes it.
//
// With overlay, the stream is an image layer applied over the layers before it: a file replaces
// the one at its path, and a whiteout (.wh.NAME, or .wh..wh..opq for a directory's contents)
// removes what the earlier layers put there.
func extractEntries(r io.Reader, s *stage, overlay bool) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return archiveReadError(err, "")
		}
		if h.Typeflag == tar.TypeXGlobalHeader { // metadata for the whole archive, as `git archive` writes
			continue
		}
		if err := s.countEntry(); err != nil {
			return err
		}
		if overlay {
			i := strings.LastIndex(h.Name, "/")
			dir, base := h.Name[:i+1], h.Name[i+1:]
			if hidden, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
				if base == whiteoutOpaqueDir {
					err = s.removeContents(dir)
				} else {
					err = s.remove(dir + hidden)
				}
				if err != nil {
					return fmt.Errorf("the whiteout %q: %w", h.Name, err)
				}
				continue
			}
			if h.Typeflag == tar.TypeReg {
				if err := s.remove(h.Name); err != nil {
					return err
				}
			}
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if err := s.writeFile(h.Name, tr); err != nil {
				return streamError(err)
			}
		case tar.TypeDir:
			if name := strings.TrimSuffix(h.Name, "/"); !filepath.IsLocal(filepath.FromSlash(name)) {
				return fmt.Errorf("the archive member %q is not a path inside the bundle (absolute or with '..'); refusing it", h.Name)
			}
		default:
			return fmt.Errorf("the archive member %q is a link or a special file (tar type %q); a bundle holds only regular files",
				h.Name, h.Typeflag)
		}
	}
}
