package store

import (
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// A DSN's password reaches error messages in more shapes than its own: a URL with an
// unescaped '@' in the password (postgres://u:pa@ss@host/db) is read by pgx as password "pa"
// and host "ss@host", so the host in "cannot connect to ss@host" carries the rest of it;
// a key=value DSN quotes it ('se cret'); PGPASSWORD supplies it with no trace in the DSN.
// RedactDSN and secrets cover every one of those, erring towards hiding too much.

// RedactDSN returns dsn with every password in it replaced by "xxxxx": the URL's userinfo
// password (up to the last '@', so an unescaped '@' in it is covered), a password query
// parameter (to the end: an unescaped '&' in it is covered), and key=value password
// settings (quoted or not). It works on the text as written, never on a parse of it that
// might split the password differently (a '#' or '?' in it).
func RedactDSN(dsn string) string {
	if isURL(dsn) {
		if m := urlPassword.FindStringSubmatchIndex(dsn); m != nil {
			dsn = dsn[:m[2]] + "xxxxx" + dsn[m[3]:]
		}
		if m := urlQueryPassword.FindStringSubmatchIndex(dsn); m != nil {
			dsn = dsn[:m[2]] + "xxxxx"
		}
		return dsn
	}
	var b strings.Builder
	last := 0
	for _, kv := range keyValues(dsn) {
		if isPasswordKey(kv.key) {
			b.WriteString(dsn[last:kv.start])
			b.WriteString(strings.ToLower(kv.key) + "=xxxxx")
			last = kv.end
		}
	}
	b.WriteString(dsn[last:])
	return b.String()
}

var (
	// scheme://user:password@... with the password running to the last '@' (greedy, across
	// any character).
	urlPassword = regexp.MustCompile(`(?s)^[a-zA-Z][a-zA-Z0-9+.-]*://[^:@]*:(.*)@`)
	// ?password=... or &password=... (or sslpassword, the client key's passphrase), to the
	// end of the DSN.
	urlQueryPassword = regexp.MustCompile(`(?is)[?&](?:ssl)?password=(.*)$`)
)

// isPasswordKey: the connection parameters that hold a secret, password and sslpassword (the
// passphrase of the client's TLS key).
func isPasswordKey(key string) bool {
	return strings.EqualFold(key, "password") || strings.EqualFold(key, "sslpassword")
}

func isURL(dsn string) bool {
	scheme, _, ok := strings.Cut(dsn, "://")
	return ok && !strings.ContainsAny(scheme, " =")
}

// secrets are the texts an error message must not show: every form of the passwords a DSN
// (and, once parsed, its configuration) holds.
type secrets []string

// dsnSecrets returns the passwords written in dsn, as written and unescaped. A URL password
// holding an '@' also yields its '@'-separated pieces, since pgx splits it there.
func dsnSecrets(dsn string) secrets {
	var out secrets
	if isURL(dsn) {
		if u, err := url.Parse(dsn); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok {
				out = out.add(p)
			}
		}
		if m := urlPassword.FindStringSubmatch(dsn); m != nil {
			out = out.add(m[1])
			for _, piece := range strings.Split(m[1], "@") {
				out = out.add(piece)
			}
		}
		if m := urlQueryPassword.FindStringSubmatch(dsn); m != nil {
			out = out.add(m[1])
			for _, piece := range strings.Split(m[1], "&") {
				out = out.add(piece)
			}
		}
		return out
	}
	for _, kv := range keyValues(dsn) {
		if isPasswordKey(kv.key) {
			out = out.add(kv.value).add(kv.raw)
		}
	}
	return out
}

// add appends s and its URL-unescaped form (empty strings are skipped).
func (s secrets) add(v string) secrets {
	if v == "" {
		return s
	}
	s = append(s, v)
	if u, err := url.PathUnescape(v); err == nil && u != v && u != "" {
		s = append(s, u)
	}
	if u, err := url.QueryUnescape(v); err == nil && u != v && u != "" {
		s = append(s, u)
	}
	return s
}

// redact replaces every secret in msg, as is and URL-escaped, with "xxxxx"; longer ones
// first, so a piece of a password never leaves the rest of it visible.
func (s secrets) redact(msg string) string {
	all := make([]string, 0, 3*len(s))
	for _, v := range s {
		all = append(all, v, url.QueryEscape(v), url.PathEscape(v))
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	for _, v := range all {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, "xxxxx")
		}
	}
	return msg
}

// keyValue is one setting of a key=value DSN: dsn[start:end] is "key = value" as written.
type keyValue struct {
	key, value, raw string
	start, end      int
}

// keyValues splits a libpq key=value connection string as libpq does: spaces around '=',
// values single-quoted (with \' and \\ escapes) or running to the next space. A setting it
// cannot finish (no '=', an unterminated quote) takes the rest of the string as its value,
// so a password is never left half-hidden.
func keyValues(dsn string) []keyValue {
	var out []keyValue
	i, n := 0, len(dsn)
	space := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	for {
		for i < n && space(dsn[i]) {
			i++
		}
		if i >= n {
			return out
		}
		kv := keyValue{start: i}
		for i < n && dsn[i] != '=' && !space(dsn[i]) {
			i++
		}
		kv.key = dsn[kv.start:i]
		for i < n && space(dsn[i]) {
			i++
		}
		if i >= n || dsn[i] != '=' {
			kv.raw, kv.value, kv.end = dsn[i:], dsn[i:], n
			return append(out, kv)
		}
		i++
		for i < n && space(dsn[i]) {
			i++
		}
		vstart := i
		var v strings.Builder
		if i < n && dsn[i] == '\'' {
			i++
			closed := false
			for i < n {
				c := dsn[i]
				if c == '\\' && i+1 < n {
					v.WriteByte(dsn[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				v.WriteByte(c)
			}
			if !closed {
				kv.raw, kv.value, kv.end = dsn[vstart:], dsn[vstart:], n
				return append(out, kv)
			}
		} else {
			for i < n && !space(dsn[i]) {
				c := dsn[i]
				if c == '\\' && i+1 < n {
					v.WriteByte(dsn[i+1])
					i += 2
					continue
				}
				v.WriteByte(c)
				i++
			}
		}
		kv.raw, kv.value, kv.end = dsn[vstart:i], v.String(), i
		out = append(out, kv)
	}
}
