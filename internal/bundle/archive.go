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

// fetchArchive downloads the .tar, .tar.gz or .tgz archive at uri and extracts it into the stage.
func fetchArchive(ctx context.Context, uri string, s *stage) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if urlErr, ok := errors.AsType[*url.Error](err); ok { // its message repeats the URI
			err = urlErr.Err
		}
		return fmt.Errorf("cannot download the archive (%w); check the URI and the network", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the server answered %s; check that the archive is at this URI and can be downloaded without credentials", resp.Status)
	}
	var r io.Reader = resp.Body
	if path := strings.ToLower(req.URL.Path); strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".tgz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("reading the archive: %w; is it gzip-compressed, as its name says?", err)
		}
		defer func() { _ = zr.Close() }()
		r = zr
	}
	return extractTar(r, s)
}

// extractTar writes the regular files of a tar stream into the stage. It refuses members that
// would land outside the bundle (absolute paths, '..') and links or devices, which a bundle
// does not hold; directories need no entry of their own.
func extractTar(r io.Reader, s *stage) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if err := s.writeFile(h.Name, tr); err != nil {
				return err
			}
		case tar.TypeDir:
			if name := strings.TrimSuffix(h.Name, "/"); !filepath.IsLocal(filepath.FromSlash(name)) {
				return fmt.Errorf("the archive member %q is not a path inside the bundle (absolute or with '..'); refusing it", h.Name)
			}
		case tar.TypeXGlobalHeader: // metadata for the whole archive, as `git archive` writes
		default:
			return fmt.Errorf("the archive member %q is a link or a special file (tar type %q); a bundle holds only regular files",
				h.Name, h.Typeflag)
		}
	}
}
