package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startControl starts a platform for control-endpoint tests: nothing it is
// sent starts a replica (initial-scale 0).
func startControl(t *testing.T) *Platform {
	t.Helper()
	p, err := StartPlatform(Options{
		Addr: "127.0.0.1:0", ControlAddr: "127.0.0.1:0", Autoscaler: fastConfig,
		ControlTokenFile: filepath.Join(t.TempDir(), "servingkit", "control-token"),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, p.Stop(ctx))
	})
	return p
}

type controlReq struct {
	method, path, host, origin, contentType, token, body string
	header                                               map[string]string
}

func (p *Platform) send(t *testing.T, r controlReq) (int, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, "http://"+p.ControlAddr()+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	if r.host != "" {
		req.Host = r.host
	}
	if r.origin != "" {
		req.Header.Set("Origin", r.origin)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func (p *Platform) serviceNames() []string {
	var names []string
	for _, s := range p.Status().Services {
		names = append(names, s.Name)
	}
	return names
}

// Issue 11: a text/plain POST with a foreign Origin and Host: evil.example
// deployed a service, so any web page could deploy to the user's machine;
// GET /status answered any Host (DNS rebinding). Each defence is tested on
// its own: every other part of the request is right.
func TestControlRefusesCrossSiteAndForeignHostRequests(t *testing.T) {
	t.Parallel()
	p := startControl(t)
	manifest := fmt.Sprintf(helloAtZero, "x")
	_, port, _ := strings.Cut(p.ControlAddr(), ":")
	own := "localhost:" + port
	good := controlReq{method: http.MethodPost, path: "/apply", host: own, contentType: "application/yaml", token: p.ControlToken(), body: manifest}

	tests := []struct {
		name   string
		change func(*controlReq)
		code   int
		want   string
	}{
		{"the attack as reported", func(r *controlReq) {
			r.host, r.origin, r.contentType, r.token = "evil.example", "http://evil.example", "text/plain", ""
		}, http.StatusMisdirectedRequest, `Host "evil.example" is not this endpoint`},
		{"foreign Host", func(r *controlReq) { r.host = "evil.example:" + port }, http.StatusMisdirectedRequest, "is not this endpoint"},
		{"own host name, other port", func(r *controlReq) { r.host = "localhost:1" }, http.StatusMisdirectedRequest, "is not this endpoint"},
		{"foreign Origin", func(r *controlReq) { r.origin = "http://evil.example" }, http.StatusForbidden, `Origin "http://evil.example" are refused`},
		{"null Origin", func(r *controlReq) { r.origin = "null" }, http.StatusForbidden, `Origin "null" are refused`},
		{"cross-site fetch", func(r *controlReq) { r.header = map[string]string{"Sec-Fetch-Site": "cross-site"} }, http.StatusForbidden, "cross-site requests"},
		{"no token", func(r *controlReq) { r.token = "" }, http.StatusUnauthorized, "needs the header \"Authorization: Bearer <token>\"; the token is in " + p.ControlTokenFile()},
		{"wrong token", func(r *controlReq) { r.token = strings.Repeat("0", 64) }, http.StatusUnauthorized, "Authorization: Bearer"},
		{"text/plain", func(r *controlReq) { r.contentType = "text/plain" }, http.StatusUnsupportedMediaType, `Content-Type "text/plain" is not accepted`},
		{"form", func(r *controlReq) { r.contentType = "application/x-www-form-urlencoded" }, http.StatusUnsupportedMediaType, "is not accepted"},
		{"no content type", func(r *controlReq) { r.contentType = "" }, http.StatusUnsupportedMediaType, "is not accepted"},
	}
	for _, tt := range tests {
		r := good
		tt.change(&r)
		code, body := p.send(t, r)
		assert.Equal(t, tt.code, code, "%s: %s", tt.name, body)
		assert.Contains(t, body, tt.want, tt.name)
	}
	assert.Empty(t, p.serviceNames(), "a refused request deployed something")

	// A request without a body needs no content type (the guard lets it
	// through; /apply then finds no manifest).
	r := good
	r.body, r.contentType = "", ""
	code, body := p.send(t, r)
	assert.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "manifest: empty")

	// GET /status: the Host check applies, the token is not needed.
	code, body = p.send(t, controlReq{method: http.MethodGet, path: "/status", host: "evil.example"})
	assert.Equal(t, http.StatusMisdirectedRequest, code, body)
	code, body = p.send(t, controlReq{method: http.MethodGet, path: "/status", host: "rebind.evil.example:" + port})
	assert.Equal(t, http.StatusMisdirectedRequest, code, body)
	for _, host := range []string{own, p.ControlAddr(), "LOCALHOST:" + port, "localhost"} {
		code, body = p.send(t, controlReq{method: http.MethodGet, path: "/status", host: host})
		assert.Equal(t, http.StatusOK, code, "Host %s: %s", host, body)
	}
	code, body = p.send(t, controlReq{method: http.MethodGet, path: "/status", host: own, origin: "http://" + own})
	assert.Equal(t, http.StatusOK, code, "same origin: %s", body)

	// The right request, YAML or JSON, is applied.
	code, body = p.send(t, good)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"applied":"default/hello"`)
	js := `{"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "json"},
	        "spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/initial-scale": "0"}},
	                              "spec": {"containers": [{"image": "helloworld-go"}]}}}}`
	r = good
	r.body, r.contentType = js, "application/json; charset=utf-8"
	r.header = map[string]string{"Sec-Fetch-Site": "same-origin"}
	code, body = p.send(t, r)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, []string{"default/hello", "default/json"}, p.serviceNames())
}

// Issue 11: a body over 1 MiB was cut at 1 MiB and the rest applied,
// losing a traffic block past the cut. It is refused with 413 naming the
// limit, and nothing is applied.
func TestControlRefusesAManifestOverTheLimit(t *testing.T) {
	t.Parallel()
	p := startControl(t)
	manifest := fmt.Sprintf(helloAtZero, "x") + "# " + strings.Repeat("x", MaxManifestBytes) + "\n" +
		"  traffic:\n    - {latestRevision: true, percent: 100, tag: big}\n"
	_, port, _ := strings.Cut(p.ControlAddr(), ":")
	code, body := p.send(t, controlReq{method: http.MethodPost, path: "/apply", host: "localhost:" + port,
		contentType: "application/yaml", token: p.ControlToken(), body: manifest})
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, body)
	assert.Contains(t, body, "larger than the limit of 1048576 bytes (1 MiB)")
	assert.Empty(t, p.serviceNames())
}

// The generated token is in a file only the user can read, and is long.
func TestControlTokenFile(t *testing.T) {
	t.Parallel()
	p := startControl(t)
	fi, err := os.Stat(p.ControlTokenFile())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(p.ControlTokenFile()))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	data, err := os.ReadFile(p.ControlTokenFile())
	require.NoError(t, err)
	assert.Equal(t, p.ControlToken()+"\n", string(data))
	assert.Len(t, p.ControlToken(), 64)

	// A file planted at the path is replaced, not written through.
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(target, []byte("keep"), 0o644))
	link := filepath.Join(dir, "token")
	require.NoError(t, os.Symlink(target, link))
	require.NoError(t, writeTokenFile(link, "secret"))
	data, err = os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "keep", string(data))
	fi, err = os.Lstat(link)
	require.NoError(t, err)
	assert.True(t, fi.Mode().IsRegular())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
