package bundle

import (
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/podium-dev/podium/internal/bundleuri"
)

// urlInText finds URLs in error messages: clients put the request's URL in theirs.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// redactError makes err fit to print: it rewrites the URL of every *url.Error in its tree (the
// errors of net/http and of the stores' clients, which embed the request's URL) and redacts
// every URL left in its message. The result still unwraps to err.
func redactError(err error) error {
	if err == nil {
		return nil
	}
	walk(err, func(e error) {
		if ue, ok := e.(*url.Error); ok {
			ue.URL = bundleuri.Redact(ue.URL)
		}
	})
	return &redactedError{msg: urlInText.ReplaceAllStringFunc(err.Error(), redactInText), err: err}
}

// redactInText redacts a URL found in a message, leaving the punctuation that follows it.
func redactInText(s string) string {
	trimmed := strings.TrimRight(s, ":;,.)]")
	return bundleuri.Redact(trimmed) + s[len(trimmed):]
}

// walk calls f on every error in err's tree.
func walk(err error, f func(error)) {
	for err != nil {
		f(err)
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, f)
			}
			return
		default:
			err = errors.Unwrap(err)
		}
	}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
