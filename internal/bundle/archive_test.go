package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// serveFiles serves the given bodies by path on a loopback HTTP server, closed when the test ends.
func serveFiles(t *testing.T, bodies map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tarOf archives dir with GNU tar, the way a person would publish a bundle.
func tarOf(t *testing.T, dir string, gzipped bool) []byte {
	t.Helper()
	flags := "-cf"
	if gzipped {
		flags = "-czf"
	}
	cmd := exec.Command("tar", flags, "-", "-C", dir, ".")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	return out
}

// tarGz builds a .tar.gz from headers, each regular file holding its name as content.
func tarGz(t *testing.T, headers ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range headers {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(h.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchHTTPArchive(t *testing.T) {
	src := writeBundle(t, seedBundle)
	srv := serveFiles(t, map[string][]byte{
		"/battle/4.tar":    tarOf(t, src, false),
		"/battle/4.tar.gz": tarOf(t, src, true),
		"/battle/4.tgz":    tarOf(t, src, true),
	})
	for _, name := range []string{"4.tar", "4.tar.gz", "4.tgz"} {
		t.Run(name, func(t *testing.T) {
			dest := newDest(t)
			if err := Fetch(t.Context(), srv.URL+"/battle/"+name, dest, Options{Digest: digestOf(t, seedBundle)}); err != nil {
				t.Fatal(err)
			}
			wantBundle(t, dest, seedBundle)
		})
	}
}

func TestFetchHTTPRefusesUnsafeArchives(t *testing.T) {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	for name, tc := range map[string]struct {
		member *tar.Header
		want   string
	}{
		"a parent path":      {reg("../evil"), `"../evil" is not a path inside the bundle`},
		"a hidden parent":    {reg("meta/../../evil"), `"meta/../../evil" is not a path inside the bundle`},
		"an absolute path":   {reg("/tmp/evil"), `"/tmp/evil" is not a path inside the bundle`},
		"a parent directory": {&tar.Header{Name: "../evil/", Typeflag: tar.TypeDir, Mode: 0o755}, `"../evil/" is not a path inside the bundle`},
		"a symbolic link":    {&tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, `"evil" is a link or a special file`},
		"a hard link":        {&tar.Header{Name: "evil", Typeflag: tar.TypeLink, Linkname: "model.pkl"}, `"evil" is a link or a special file`},
		"a device":           {&tar.Header{Name: "evil", Typeflag: tar.TypeChar}, `"evil" is a link or a special file`},
	} {
		t.Run(name, func(t *testing.T) {
			// The bad member comes after a good one, which must not remain either.
			srv := serveFiles(t, map[string][]byte{"/b.tar.gz": tarGz(t, reg("model.pkl"), tc.member)})
			dest := newDest(t)
			uri := srv.URL + "/b.tar.gz"
			wantError(t, Fetch(t.Context(), uri, dest, Options{}), "bundle "+uri+": ", tc.want)
			wantNothing(t, dest)
			if _, err := os.Lstat(filepath.Join(filepath.Dir(filepath.Dir(dest)), "evil")); err == nil {
				t.Fatal("the archive wrote outside the bundle")
			}
		})
	}
}

func TestFetchHTTPErrors(t *testing.T) {
	srv := serveFiles(t, map[string][]byte{"/plain.tar.gz": []byte("not gzip")})
	unreachable := fmt.Sprintf("http://127.0.0.1:%d/b.tar.gz", closedPort(t))
	for name, tc := range map[string]struct {
		uri  string
		want string
	}{
		"a missing archive":     {srv.URL + "/missing.tgz", "the server answered 404 Not Found"},
		"not gzip":              {srv.URL + "/plain.tar.gz", "is it gzip-compressed"},
		"no archive":            {srv.URL + "/battle/4/", "must name a .tar, .tar.gz or .tgz archive"},
		"an unreachable server": {unreachable, "cannot download the archive (dial tcp"},
	} {
		t.Run(name, func(t *testing.T) {
			dest := newDest(t)
			wantError(t, Fetch(t.Context(), tc.uri, dest, Options{Network: quick}), "bundle "+tc.uri+": ", tc.want)
			wantNothing(t, dest)
		})
	}
}
