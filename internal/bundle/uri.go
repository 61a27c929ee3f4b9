package bundle

import "github.com/podium-dev/podium/internal/bundleuri"

// A bundle's URI is parsed by internal/bundleuri, which the fetcher shares with what renders the
// prediction pods; these are its names as the fetcher's callers know them.
type (
	Location     = bundleuri.Location
	OCIReference = bundleuri.OCIReference
)

// The URI schemes a bundle can live under.
const (
	SchemeS3     = bundleuri.SchemeS3
	SchemeGS     = bundleuri.SchemeGS
	SchemeAzblob = bundleuri.SchemeAzblob
	SchemeFile   = bundleuri.SchemeFile
	SchemeHTTP   = bundleuri.SchemeHTTP
	SchemeHTTPS  = bundleuri.SchemeHTTPS
	SchemePVC    = bundleuri.SchemePVC
	SchemeOCI    = bundleuri.SchemeOCI
)

// ParseURI parses spec.artifact.uri into a Location (bundleuri.Parse).
func ParseURI(uri string) (Location, error) { return bundleuri.Parse(uri) }

// Redact returns uri fit to print (bundleuri.Redact).
func Redact(uri string) string { return bundleuri.Redact(uri) }
