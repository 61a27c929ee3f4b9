package bundle

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces every secret that Redact hides.
const redacted = "xxxxx"

// Redact returns uri fit to print: a password in the userinfo becomes xxxxx (a userinfo without
// password, which may be a token, becomes xxxxx whole), and so does every value of the query
// (presigned URLs carry their signature there) and the fragment. Keys and the rest stay, so a
// person can still tell which URI failed.
func Redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return redactUnparsed(uri)
	}
	if u.User == nil && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" {
		return uri // nothing to hide: as written
	}
	return redactURL(u).String()
}

func redactURL(u *url.URL) *url.URL {
	r := *u
	if r.User != nil {
		if _, ok := r.User.Password(); ok {
			r.User = url.UserPassword(r.User.Username(), redacted)
		} else {
			r.User = url.User(redacted)
		}
	}
	if r.RawQuery != "" {
		parts := strings.Split(r.RawQuery, "&")
		for i, p := range parts {
			if key, _, ok := strings.Cut(p, "="); ok {
				parts[i] = key + "=" + redacted
			} else if p != "" {
				parts[i] = redacted // a bare word may be a token
			}
		}
		r.RawQuery = strings.Join(parts, "&")
	}
	r.ForceQuery = false
	if r.Fragment != "" || r.RawFragment != "" {
		r.Fragment, r.RawFragment = redacted, ""
	}
	return &r
}

// redactUnparsed redacts what url.Parse refuses, cutting it where a parser would see userinfo,
// a query or a fragment.
func redactUnparsed(raw string) string {
	s := raw
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i+1] + redacted
	}
	if i := strings.Index(s, "://"); i >= 0 {
		authority := s[i+3:]
		if end := strings.IndexAny(authority, "/?#"); end >= 0 {
			authority = authority[:end]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			s = s[:i+3] + redacted + s[i+3+at:]
		}
	}
	return s
}

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
			ue.URL = Redact(ue.URL)
		}
	})
	return &redactedError{msg: urlInText.ReplaceAllStringFunc(err.Error(), redactInText), err: err}
}

// redactInText redacts a URL found in a message, leaving the punctuation that follows it.
func redactInText(s string) string {
	trimmed := strings.TrimRight(s, ":;,.)]")
	return Redact(trimmed) + s[len(trimmed):]
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
