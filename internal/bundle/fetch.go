package bundle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Default limits of a fetch: generous for a model bundle, small enough that a wrong URI (the
// root of a data lake, say) fails instead of filling the volume.
const (
	DefaultMaxBytes int64 = 20 << 30 // 20 GiB
	DefaultMaxFiles       = 10000
)

// Options tune a Fetch.
type Options struct {
	// Digest, when set, is the digest the fetched bundle must have (spec.artifact.digest).
	Digest string
	// S3 configures s3:// URIs.
	S3 S3Options
	// MaxBytes bounds the bundle's total size; 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxFiles bounds the bundle's number of files, and an archive's number of entries of any
	// kind; 0 means DefaultMaxFiles.
	MaxFiles int
	// HTTP authenticates http(s) fetches.
	HTTP HTTPCredentials
	// OCI configures oci:// fetches.
	OCI OCIOptions
	// Network bounds the waits and retries of every scheme but file://.
	Network NetworkOptions
}

// S3Options configure the S3 client of s3:// URIs. Credentials come from the AWS SDK's default
// chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) first.
type S3Options struct {
	// Endpoint is the URL of an S3-compatible store, such as http://minio.storage:9000; empty
	// means AWS S3.
	Endpoint string
	// Region is the bucket's region; empty means the SDK's default (AWS_REGION, the shared
	// config), else us-east-1, which S3-compatible stores accept.
	Region string
	// ForcePathStyle addresses buckets as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT, as most
	// S3-compatible stores need.
	ForcePathStyle bool
}

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// checkDigestSyntax rejects a malformed expected digest before anything is downloaded.
func checkDigestSyntax(digest string) error {
	if !digestPattern.MatchString(digest) {
		return fmt.Errorf("spec.artifact.digest %q is not %q followed by 64 lowercase hex digits", digest, DigestPrefix)
	}
	return nil
}

// mismatch says that a bundle's digest is not the expected one.
func mismatch(got, want string) error {
	return fmt.Errorf("digest %s does not match spec.artifact.digest %s; "+
		"the bundle changed since it was registered, or the digest is wrong", got, want)
}

// Verify checks that the bundle in dir, such as a mounted pvc:// bundle, has the given digest.
func Verify(dir, digest string) error {
	if err := checkDigestSyntax(digest); err != nil {
		return fmt.Errorf("bundle %s: %w", dir, err)
	}
	got, err := Digest(dir) // its errors name dir
	if err != nil {
		return err
	}
	if got != digest {
		return fmt.Errorf("bundle %s: %w", dir, mismatch(got, digest))
	}
	return nil
}

// Fetch downloads the bundle at uri into the directory dest, keeping the objects' paths relative
// to uri, and verifies opts.Digest when it is set. The download goes to a temporary directory next
// to dest, which replaces dest (if any) only once the bundle is complete and verified: on any
// failure dest is left as it was and nothing partial remains. dest must therefore be a path
// inside a writable volume, not the volume's mount point.
//
// s3://, gs://, azblob:// and file:// URIs name a prefix whose objects are the bundle; http(s)://
// URIs name a .tar, .tar.gz or .tgz archive of it; oci:// URIs name an OCI artifact pinned by its
// manifest's digest, whose layers hold the files (see fetchOCI). pvc:// bundles are mounted, not fetched: use
// Verify on the mounted directory.
//
// Every error names the URI, redacted (see Redact), and holds no secret of the URI.
func Fetch(ctx context.Context, uri, dest string, opts Options) error {
	loc, err := ParseURI(uri)
	if err != nil {
		return err
	}
	if creds := opts.HTTP; creds.BearerToken != "" && (creds.Username != "" || creds.Password != "") {
		return fmt.Errorf("bundle %s: give either a bearer token or a username and password for HTTP, not both", Redact(uri))
	}
	opts.Network = opts.Network.withDefaults()
	if err := fetch(ctx, loc, uri, dest, opts); err != nil {
		if ctx.Err() != nil {
			// The deadline or a signal cut the fetch short: say so rather than what it broke.
			err = fmt.Errorf("%w (while: %w)", context.Cause(ctx), err)
		}
		return redactError(fmt.Errorf("bundle %s: %w", Redact(uri), err))
	}
	return nil
}

func fetch(ctx context.Context, loc Location, uri, dest string, opts Options) (err error) {
	if loc.Scheme == SchemePVC {
		return errors.New("a pvc:// bundle is mounted into the pod, not fetched; verify the mounted directory instead (fetch --verify DIR)")
	}
	if opts.Digest != "" {
		if err := checkDigestSyntax(opts.Digest); err != nil {
			return err
		}
	}
	dest = filepath.Clean(dest)
	s, err := newStage(dest, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(s.dir)
		}
	}()

	switch {
	case loc.IsArchive():
		err = fetchArchive(ctx, uri, opts, s)
	case loc.Scheme == SchemeOCI:
		err = fetchOCI(ctx, loc, opts, s)
	default:
		err = fetchObjects(ctx, loc, opts, s)
	}
	if err != nil {
		return err
	}
	if opts.Digest != "" {
		got, err := Digest(s.dir)
		if err != nil {
			return err
		}
		if got != opts.Digest {
			return mismatch(got, opts.Digest)
		}
	}
	return s.install(dest)
}

// stage is the temporary directory a bundle is downloaded into, with the limits on what it may hold.
type stage struct {
	dir      string
	files    int
	entries  int // of an archive: files, directories and anything else
	maxFiles int
	bytes    int64
	maxBytes int64
}

// newStage makes the temporary directory next to dest, on the same file system, so that a rename
// can put it in place. It first removes what an interrupted fetch to the same dest left behind.
func newStage(dest string, opts Options) (*stage, error) {
	s := &stage{maxFiles: opts.MaxFiles, maxBytes: opts.MaxBytes}
	if s.maxFiles <= 0 {
		s.maxFiles = DefaultMaxFiles
	}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxBytes
	}
	parent, prefix := filepath.Dir(dest), "."+filepath.Base(dest)+".fetch-"
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("cannot make the parent directory of %s (%w); "+
			"the destination must be a path inside a writable volume", dest, err)
	}
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			_ = os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("cannot make a temporary directory next to %s (%w); "+
			"the destination must be a path inside a writable volume, not its mount point", dest, err)
	}
	s.dir = dir
	return s, nil
}

// reset empties the stage for another attempt.
func (s *stage) reset() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			return err
		}
	}
	s.files, s.entries, s.bytes = 0, 0, 0
	return nil
}

// countEntry counts an archive's entry towards the file limit, whatever its kind.
func (s *stage) countEntry() error {
	if s.entries == s.maxFiles {
		return &limitError{fmt.Sprintf("the archive holds more than %d entries (files, directories and links all count); "+
			"check the URI, or raise the limit (--max-files) if the bundle is that large", s.maxFiles)}
	}
	s.entries++
	return nil
}

// writeFile copies r into the file rel ('/'-separated, relative to the bundle's root) of the stage.
// When reading r fails, the file is removed and no longer counts, so that another attempt can
// write it again.
func (s *stage) writeFile(rel string, r io.Reader) error {
	local, err := bundlePath(rel)
	if err != nil {
		return err
	}
	if s.files == s.maxFiles {
		return fmt.Errorf("more than %d files; check the URI, or raise the limit (--max-files) if the bundle is that large", s.maxFiles)
	}
	s.files++
	path := filepath.Join(s.dir, local)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	n, err := io.Copy(f, io.LimitReader(r, s.maxBytes-s.bytes+1))
	s.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.files--
		s.bytes -= n
		_ = os.Remove(path)
		return fmt.Errorf("downloading %s: %w", rel, err)
	}
	if s.bytes > s.maxBytes {
		return fmt.Errorf("more than %d bytes; check the URI, or raise the limit (--max-size) if the bundle is that large", s.maxBytes)
	}
	return nil
}

// install renames the complete stage to dest. An existing dest, such as the bundle of an earlier
// run of the same pod, is moved aside first and removed after.
func (s *stage) install(dest string) error {
	// MkdirTemp made the stage private; the model server may run as another user.
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	err := os.Rename(s.dir, dest)
	if err == nil {
		return nil
	}
	if _, statErr := os.Lstat(dest); statErr != nil {
		return fmt.Errorf("cannot move the bundle into place (%w); "+
			"the destination must be a path inside a writable volume, not its mount point", err)
	}
	old := s.dir + ".old"
	if err := os.Rename(dest, old); err != nil {
		return fmt.Errorf("cannot move the existing %s aside (%w); "+
			"the destination must be a path inside a writable volume, not its mount point", dest, err)
	}
	if err := os.Rename(s.dir, dest); err != nil {
		_ = os.Rename(old, dest)
		return fmt.Errorf("cannot move the bundle into place: %w", err)
	}
	_ = os.RemoveAll(old) // what is left, the next fetch to dest removes
	return nil
}

// bundlePath is rel ('/'-separated, relative to the bundle's root) as a local path strictly
// inside the bundle: not absolute, not out of it through '..', and not the root itself (".",
// "sub/.."), which a file or a whiteout would replace or erase with everything in it.
func bundlePath(rel string) (string, error) {
	local := filepath.Clean(filepath.FromSlash(strings.TrimSuffix(rel, "/")))
	if !filepath.IsLocal(local) || local == "." {
		return "", fmt.Errorf("%q is not a path inside the bundle (absolute, empty, with '..', or the bundle's root "+
			"itself); refusing it", rel)
	}
	return local, nil
}

// remove deletes the file or directory rel of the stage, if any, and uncounts the files it held:
// an image layer replaces or whites out what an earlier one wrote.
func (s *stage) remove(rel string) error {
	local, err := bundlePath(rel)
	if err != nil {
		return err
	}
	target := filepath.Join(s.dir, local)
	err = filepath.WalkDir(target, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			s.files--
			s.bytes -= info.Size()
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(target)
}

// removeContents empties the directory rel of the stage, if it exists (an opaque whiteout).
func (s *stage) removeContents(rel string) error {
	if strings.Trim(rel, "/") == "" {
		entries, err := os.ReadDir(s.dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := s.remove(e.Name()); err != nil {
				return err
			}
		}
		return nil
	}
	local, err := bundlePath(rel)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, local))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := s.remove(filepath.ToSlash(filepath.Join(local, e.Name()))); err != nil {
			return err
		}
	}
	return nil
}
