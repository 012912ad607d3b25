package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The control endpoint assumes that any web page the user opens, and any
// other local user, may send it requests. Every request must name the
// endpoint itself as its Host (localhost or the listening IP, so a DNS
// rebinding name is refused) and come from no foreign Origin; a request
// that changes state (any method but GET and HEAD) also needs the bearer
// token, and its body, if any, must be YAML or JSON.

// manifestTypes are the content types a state-changing request may have.
var manifestTypes = []string{"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json"}

// DefaultTokenFile is where the platform writes the control token it
// generates: $XDG_CONFIG_HOME/servingkit/control-token, or
// ~/.config/servingkit/control-token.
func DefaultTokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("platform: no directory for the control token (set -token-file): %w", err)
	}
	return filepath.Join(dir, "servingkit", "control-token"), nil
}

// newToken returns 256 random bits in hex.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// writeTokenFile writes token to path, readable and writable only by the
// user: a new file created 0600 in the same directory (itself 0700 if
// created) is renamed over path, so the token is never readable by others,
// even for a moment, and a file or link planted at path is replaced, not
// written through.
func writeTokenFile(path, token string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("platform: control token file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".control-token-*")
	if err != nil {
		return fmt.Errorf("platform: control token file: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("platform: control token file: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("platform: control token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("platform: control token file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("platform: control token file: %w", err)
	}
	return nil
}

// controlGuard wraps the control endpoint's handler with its checks.
type controlGuard struct {
	token     string
	tokenFile string          // where the token is, for error messages; "" if given by flag
	port      string          // the listener's port
	hosts     map[string]bool // host names the endpoint answers to, lower case
	next      http.Handler
}

func newControlGuard(addr, token, tokenFile string, next http.Handler) (*controlGuard, error) {
	ip, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("platform: control address %q: %w", addr, err)
	}
	hosts := map[string]bool{"localhost": true, ip: true}
	if strings.Contains(ip, ":") {
		hosts["["+ip+"]"] = true
	}
	return &controlGuard{token: token, tokenFile: tokenFile, port: port, hosts: hosts, next: next}, nil
}

// ownHost reports whether host (a Host header or an Origin's host) names
// this endpoint: localhost or the listening IP, with the listening port
// or none.
func (g *controlGuard) ownHost(host string) bool {
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i+1:]
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	return g.hosts[name] && (port == "" || port == g.port)
}

func (g *controlGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.ownHost(r.Host) {
		http.Error(w, fmt.Sprintf("control: Host %q is not this endpoint; use localhost:%s", r.Host, g.port), http.StatusMisdirectedRequest)
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		host, ok := strings.CutPrefix(o, "http://")
		if !ok || !g.ownHost(host) {
			http.Error(w, fmt.Sprintf("control: requests from Origin %q are refused", o), http.StatusForbidden)
			return
		}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		http.Error(w, fmt.Sprintf("control: %s requests (Sec-Fetch-Site) are refused", s), http.StatusForbidden)
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		g.next.ServeHTTP(w, r)
		return
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth)), []byte(g.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="servingkit-control"`)
		where := "given with -token"
		if g.tokenFile != "" {
			where = "in " + g.tokenFile
		}
		http.Error(w, fmt.Sprintf("control: %s %s needs the header \"Authorization: Bearer <token>\"; the token is %s", r.Method, r.URL.Path, where), http.StatusUnauthorized)
		return
	}
	// A body must be YAML or JSON: a browser can send text/plain and form
	// bodies cross-site without asking (no CORS preflight); these types
	// it cannot. A request without a body (a delete) needs no type.
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.ContentLength != 0 && r.Method != http.MethodDelete && (err != nil || !slices.Contains(manifestTypes, mt)) {
		http.Error(w, fmt.Sprintf("control: Content-Type %q is not accepted; use one of %s", r.Header.Get("Content-Type"), strings.Join(manifestTypes, ", ")), http.StatusUnsupportedMediaType)
		return
	}
	g.next.ServeHTTP(w, r)
}
