package traffic

import "net/http"

// cookieValue returns the value of the first valid cookie called name in
// the request's Cookie headers, as net/http's Request.Cookie does, without
// allocating (Request.Cookie parses every cookie into a new slice).
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line = cutByte(line, ';')
			part = trimSpace(part)
			if part == "" {
				continue
			}
			n, v := cutByte(part, '=')
			if trimSpace(n) != name {
				continue
			}
			if v, ok := cookieValueOK(v); ok {
				return v, true
			}
		}
	}
	return "", false
}

func cutByte(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// trimSpace trims what net/textproto.TrimString trims: ASCII space, tab,
// CR and LF.
func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\n' }

// cookieValueOK strips the optional double quotes and checks the bytes as
// RFC 6265 (and net/http) allow them.
func cookieValueOK(v string) (string, bool) {
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return "", false
		}
	}
	return v, true
}

// isToken reports whether s is an HTTP token (RFC 7230), the rule for
// header and cookie names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}
