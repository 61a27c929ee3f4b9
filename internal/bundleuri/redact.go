package bundleuri

import (
	"net/url"
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
