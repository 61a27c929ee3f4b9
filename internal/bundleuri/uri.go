// Package bundleuri parses a model bundle's URI (spec.artifact.uri) and redacts it for messages.
// It links no storage client, so that what renders a prediction pod (internal/serving) does not
// carry the fetcher's (internal/bundle).
package bundleuri

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
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
	SchemeOCI    = "oci"
)

// Location is a bundle's place, parsed from spec.artifact.uri.
type Location struct {
	// Scheme is one of s3, gs, azblob, file, http, https, pvc and oci.
	Scheme string
	// Bucket is the bucket (s3, gs), the container (azblob), the directory (file) or the claim
	// (pvc); empty for http and https, whose URI names an archive.
	Bucket string
	// Prefix is the key prefix of the bundle's objects in the bucket: empty for the whole bucket,
	// else ending in '/', so that s3://b/v1 does not take in the objects of s3://b/v10/. For pvc
	// it is the path of the bundle inside the claim, without slashes at either end.
	Prefix string
	// OCI is the artifact of an oci:// URI; zero for the other schemes.
	OCI OCIReference
}

// OCIReference names an OCI artifact pinned by the digest of its manifest.
type OCIReference struct {
	// Registry is the registry's host, with its port if the URI gives one.
	Registry string
	// Repository is the repository's path in the registry, such as ml/battle-winner.
	Repository string
	// Tag is the tag written before the digest, if any: informative only, the digest decides.
	Tag string
	// Digest is the manifest's digest, "sha256:" and 64 lowercase hex digits.
	Digest string
}

// String is the reference as oras and docker write it, without the scheme.
func (r OCIReference) String() string {
	return r.Registry + "/" + r.Repository + "@" + r.Digest
}

// The grammar of an oci:// URI, the same in the CRD's CEL rules on spec.artifact.uri: a registry
// host (a name, an IPv4 address or a bracketed IPv6 address) with an optional port, a repository
// of lowercase path components as the OCI distribution spec defines them, an optional tag, and
// the manifest's digest, which is required.
const (
	OCIHost       = `([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[[][0-9A-Fa-f:.]+[]])(:[0-9]+)?`
	OCIRepository = `[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*)*`
	OCITag        = `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
	ociDigest     = `sha256:[a-f0-9]{64}`
)

var (
	ociURIPattern = regexp.MustCompile(`^oci://(?P<registry>` + OCIHost + `)/(?P<repository>` + OCIRepository + `)` +
		`(:(?P<tag>` + OCITag + `))?@(?P<digest>` + ociDigest + `)$`)
	ociPinned = regexp.MustCompile(`@` + ociDigest + `$`)
)

// archiveSuffixes end the path of every http(s) URI: HTTP cannot list a directory, so an http(s)
// bundle is an archive.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz"}

// Parse parses spec.artifact.uri into a Location.
func Parse(uri string) (Location, error) {
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
	if !loc.IsArchive() && (u.RawQuery != "" || u.Fragment != "") {
		return Location{}, fmt.Errorf("bundle %s: a %s:// URI takes no query or fragment; "+
			"the store's settings come from the fetcher's flags and environment", uri, loc.Scheme)
	}
	if !loc.IsArchive() && u.User != nil {
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
	case SchemeOCI:
		ref, err := ParseOCI(uri)
		if err != nil {
			return Location{}, err
		}
		loc.OCI = ref
	case SchemeHTTP, SchemeHTTPS:
		if !hasArchiveSuffix(u.Path) {
			return Location{}, fmt.Errorf("bundle %s: an http(s) URI must name a .tar, .tar.gz or .tgz archive of the bundle, "+
				"because HTTP cannot list a directory; archive the bundle with `tar -czf bundle.tar.gz -C DIR .`", uri)
		}
	default:
		return Location{}, fmt.Errorf("bundle %s: unsupported scheme %q; use s3://, gs://, azblob://, file://, "+
			"http(s):// (a .tar, .tar.gz or .tgz archive), pvc:// or oci://", uri, u.Scheme)
	}
	return loc, nil
}

// parseOCI parses an oci:// URI, which has no secrets to redact, with the grammar the CRD uses.
func ParseOCI(uri string) (OCIReference, error) {
	if !ociPinned.MatchString(uri) {
		return OCIReference{}, fmt.Errorf("bundle %s: an oci:// URI must be pinned by the manifest's digest, "+
			"as oci://REGISTRY/REPOSITORY@sha256:DIGEST; `kubectl podium push` prints the pinned reference, "+
			"and `kubectl podium digest oci://REGISTRY/REPOSITORY:TAG` resolves a tag", uri)
	}
	m := ociURIPattern.FindStringSubmatch(uri)
	if m == nil {
		return OCIReference{}, fmt.Errorf("bundle %s: write an OCI artifact as oci://REGISTRY[:PORT]/REPOSITORY[:TAG]@sha256:DIGEST, "+
			"the repository in lowercase letters, digits and the separators . _ __ - /", uri)
	}
	group := func(name string) string { return m[ociURIPattern.SubexpIndex(name)] }
	return OCIReference{
		Registry: group("registry"), Repository: group("repository"), Tag: group("tag"), Digest: group("digest"),
	}, nil
}

// IsArchive tells whether the location is an archive (http, https) rather than a prefix or a claim.
func (l Location) IsArchive() bool {
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
