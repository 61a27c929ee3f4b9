package bundle

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// The URI schemes a bundle can live under.
const (
	SchemeS3     = "s3"
	SchemeGS     = "gs"
	SchemeAzblob = "azblob"
	SchemeFile   = "file"
	SchemeHTTP   = "http"
	SchemeHTTPS  = "https"
	SchemePVC    = "pvc"
)

// Location is a bundle's place, parsed from spec.artifact.uri.
type Location struct {
	// Scheme is one of s3, gs, azblob, file, http, https and pvc.
	Scheme string
	// Bucket is the bucket (s3, gs), the container (azblob), the directory (file) or the claim
	// (pvc); empty for http and https, whose URI names an archive.
	Bucket string
	// Prefix is the key prefix of the bundle's objects in the bucket: empty for the whole bucket,
	// else ending in '/', so that s3://b/v1 does not take in the objects of s3://b/v10/. For pvc
	// it is the path of the bundle inside the claim, without slashes at either end.
	Prefix string
}

// archiveSuffixes end the path of every http(s) URI: HTTP cannot list a directory, so an http(s)
// bundle is an archive.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz"}

// ParseURI parses spec.artifact.uri into a Location.
func ParseURI(uri string) (Location, error) {
	u, err := url.Parse(uri)
	if err != nil {
		if urlErr, ok := errors.AsType[*url.Error](err); ok { // its message repeats the URI
			err = urlErr.Err
		}
		return Location{}, fmt.Errorf("bundle %s: not a URI: %w", Redact(uri), err)
	}
	uri = Redact(uri) // from here on, only to name it in errors
	// url.Parse lowers the scheme; the API server's rule does not.
	if !strings.HasPrefix(uri, u.Scheme+":") {
		return Location{}, fmt.Errorf("bundle %s: write the scheme in lowercase, as %s://", uri, u.Scheme)
	}
	loc := Location{Scheme: u.Scheme}
	if !loc.isArchive() && (u.RawQuery != "" || u.Fragment != "") {
		return Location{}, fmt.Errorf("bundle %s: a %s:// URI takes no query or fragment; "+
			"the store's settings come from the fetcher's flags and environment", uri, loc.Scheme)
	}
	if !loc.isArchive() && u.User != nil {
		return Location{}, fmt.Errorf("bundle %s: a %s:// URI takes no credentials; "+
			"put them in the Secret named by spec.serving.storageSecretName", uri, loc.Scheme)
	}
	switch loc.Scheme {
	case SchemeS3, SchemeGS, SchemeAzblob:
		if u.Host == "" {
			return Location{}, fmt.Errorf("bundle %s: names no bucket; write %s://BUCKET/PREFIX/", uri, loc.Scheme)
		}
		loc.Bucket = u.Host
		loc.Prefix = strings.TrimPrefix(u.Path, "/")
		if loc.Prefix != "" && !strings.HasSuffix(loc.Prefix, "/") {
			loc.Prefix += "/"
		}
	case SchemeFile:
		if (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) {
			return Location{}, fmt.Errorf("bundle %s: write a local directory as file:///ABSOLUTE/PATH/", uri)
		}
		loc.Bucket = path.Clean(u.Path)
	case SchemePVC:
		if u.Host == "" {
			return Location{}, fmt.Errorf("bundle %s: names no claim; write pvc://CLAIM/PATH", uri)
		}
		loc.Bucket = u.Host
		loc.Prefix = strings.Trim(u.Path, "/")
	case SchemeHTTP, SchemeHTTPS:
		if !hasArchiveSuffix(u.Path) {
			return Location{}, fmt.Errorf("bundle %s: an http(s) URI must name a .tar, .tar.gz or .tgz archive of the bundle, "+
				"because HTTP cannot list a directory; archive the bundle with `tar -czf bundle.tar.gz -C DIR .`", uri)
		}
	default:
		return Location{}, fmt.Errorf("bundle %s: unsupported scheme %q; use s3://, gs://, azblob://, file://, "+
			"http(s):// (a .tar, .tar.gz or .tgz archive) or pvc://", uri, u.Scheme)
	}
	return loc, nil
}

// isArchive tells whether the location is an archive (http, https) rather than a prefix or a claim.
func (l Location) isArchive() bool {
	return l.Scheme == SchemeHTTP || l.Scheme == SchemeHTTPS
}

func hasArchiveSuffix(p string) bool {
	p = strings.ToLower(p)
	for _, s := range archiveSuffixes {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}
