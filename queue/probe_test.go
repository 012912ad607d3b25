package queue

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/stats"
)

func TestServingPortProbe(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	check := CheckerFunc(func(context.Context) error {
		if !ready.Load() {
			return errors.New("warming up")
		}
		return nil
	})
	var appSaw []string
	h := mustNew(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appSaw = append(appSaw, r.Header.Get(ProbeHeader))
	}), Config{Readiness: check})

	tests := []struct {
		name   string
		setup  func()
		header []string
		status int
		body   string
	}{
		{name: "ready", header: []string{ProbeHeader, ProbeHeaderValue}, status: http.StatusOK, body: "queue"},
		{name: "lower-case header", header: []string{"k-network-probe", "queue"}, status: http.StatusOK, body: "queue"},
		{name: "application not ready", setup: func() { ready.Store(false) }, header: []string{ProbeHeader, ProbeHeaderValue},
			status: http.StatusServiceUnavailable, body: "queue: not ready: warming up\n"},
		{name: "another probe value goes to the application", header: []string{ProbeHeader, "probe"}, status: http.StatusOK, body: ""},
		{name: "draining", setup: func() {
			ready.Store(true)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = h.Drain(ctx)
		}, header: []string{ProbeHeader, ProbeHeaderValue}, status: http.StatusServiceUnavailable, body: "queue: draining\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			w := serve(h, get(tc.header...))
			assert.Equal(t, tc.status, w.Code)
			assert.Equal(t, tc.body, w.Body.String())
		})
	}
	assert.Equal(t, []string{"probe"}, appSaw, "only the foreign probe reached the application")
}

func TestAdminHandler(t *testing.T) {
	h := mustNew(t, okApp, Config{QuietPeriod: time.Millisecond})
	rep, err := NewReporter(h.Recorder(), ReporterConfig{Revision: "default/hello-00001", Replica: "hello-abc"})
	require.NoError(t, err)
	admin := httptest.NewServer(AdminHandler(h, rep))
	defer admin.Close()

	body := func(resp *http.Response) string {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	resp, err := http.Get(admin.URL + "/ready")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ready\n", body(resp))

	msgs, err := stats.Fetch(context.Background(), nil, admin.URL+"/stats")
	require.NoError(t, err)
	assert.Empty(t, msgs, "nothing reported yet")

	serve(h, get(ProxyHeader, ProxyHeaderValue))
	rep.ReportNow(context.Background())
	msgs, err = stats.Fetch(context.Background(), nil, admin.URL+"/stats")
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "default/hello-00001", msgs[0].Revision)
	assert.Equal(t, "hello-abc", msgs[0].Stat.Source)
	assert.Equal(t, 1.0, msgs[0].Stat.RPS)
	assert.Equal(t, 1.0, msgs[0].Stat.ProxiedRPS)

	resp, err = http.Post(admin.URL+"/stats", "text/plain", nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	resp.Body.Close()

	resp, err = http.Get(admin.URL + "/wait-for-drain")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "drained\n", body(resp))

	resp, err = http.Get(admin.URL + "/ready")
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "queue: draining\n", body(resp))

	// Without a reporter there is no /stats.
	rec := httptest.NewRecorder()
	AdminHandler(h, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9091/stats", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code)
}

// TestAdminRefusesWhatABrowserCanSend: a web page cannot drain the replica
// (nor read its stats): not by a cross-site request to its port, nor
// through a domain name rebound to its address. Programs addressing it by
// IP or as localhost are served.
func TestAdminRefusesWhatABrowserCanSend(t *testing.T) {
	h := mustNew(t, okApp, Config{QuietPeriod: time.Millisecond})
	admin := AdminHandler(h, nil)
	for _, tc := range []struct {
		name   string
		host   string
		header []string
		status int
	}{
		{"rebound domain name", "evil.example:9091", nil, http.StatusMisdirectedRequest},
		{"rebound name without port", "attacker.test", nil, http.StatusMisdirectedRequest},
		{"no Host", "", nil, http.StatusMisdirectedRequest},
		{"cross-site", "127.0.0.1:9091", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"same-site", "127.0.0.1:9091", []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"foreign Origin", "127.0.0.1:9091", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
		{"null Origin", "127.0.0.1:9091", []string{"Origin", "null"}, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/wait-for-drain", nil)
			r.Host = tc.host
			for i := 0; i < len(tc.header); i += 2 {
				r.Header.Set(tc.header[i], tc.header[i+1])
			}
			rec := httptest.NewRecorder()
			admin.ServeHTTP(rec, r)
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
			assert.NoError(t, h.CheckReady(context.Background()), "the replica was not drained")
		})
	}
	for _, host := range []string{"127.0.0.1:9091", "10.1.2.3:9091", "[::1]:9091", "localhost:9091", "LOCALHOST", "10.1.2.3"} {
		r := httptest.NewRequest(http.MethodGet, "/ready", nil)
		r.Host = host
		r.Header.Set("Sec-Fetch-Site", "none") // typed into the address bar
		rec := httptest.NewRecorder()
		admin.ServeHTTP(rec, r)
		assert.Equal(t, http.StatusOK, rec.Code, host)
	}
	r := httptest.NewRequest(http.MethodGet, "/wait-for-drain", nil)
	r.Host = "10.1.2.3:9091" // the kubelet's pre-stop hook
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, r)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.ErrorIs(t, h.CheckReady(context.Background()), ErrDraining)
}

func TestAdminWaitForDrainReportsClosedConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, upgradeApp, Config{QuietPeriod: time.Second, HijackedDrainTimeout: time.Second})
		w := newHijackRecorder()
		go h.ServeHTTP(w, get("Connection", "Upgrade", "Upgrade", "echo"))
		readUpgrade(t, w.client)
		rec := httptest.NewRecorder()
		AdminHandler(h, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9091/wait-for-drain", nil))
		assert.Equal(t, http.StatusInternalServerError, rec.Code)
		assert.Contains(t, rec.Body.String(), "hijacked connections closed at the drain deadline: 1 still open")
	})
}

// fakeDialer fails until the application is up at upAt.
type fakeDialer struct {
	upAt     time.Time
	attempts atomic.Int32
}

func (d *fakeDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.attempts.Add(1)
	if time.Now().Before(d.upAt) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
	}
	c, s := net.Pipe()
	s.Close()
	return c, nil
}

func TestAppProbePollsUntilUp(t *testing.T) {
	tests := []struct {
		name     string
		upAfter  time.Duration
		c        AppProbeConfig
		wantErr  string
		returnAt time.Duration
		attempts int32
	}{
		{name: "up at once", upAfter: 0, returnAt: 0, attempts: 1},
		{name: "up after 320ms: the next 50ms attempt sees it", upAfter: 320 * time.Millisecond, returnAt: 350 * time.Millisecond, attempts: 8},
		{name: "never up: gives up after MaxWait", upAfter: time.Hour, returnAt: 10 * time.Second, attempts: 201,
			wantErr: "queue: application at 127.0.0.1:8080 not ready after 10s (201 attempts): dial tcp: connection refused"},
		{name: "own period and limit", upAfter: time.Hour, c: AppProbeConfig{Period: time.Second, MaxWait: 3 * time.Second},
			returnAt: 3 * time.Second, attempts: 4, wantErr: "not ready after 3s (4 attempts)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &fakeDialer{upAt: time.Now().Add(tc.upAfter)}
				tc.c.Address = "127.0.0.1:8080"
				tc.c.Dial = d.dial
				p, err := NewAppProbe(tc.c)
				require.NoError(t, err)
				start := time.Now()
				err = p.Check(context.Background())
				assert.Equal(t, tc.returnAt, time.Since(start))
				assert.Equal(t, tc.attempts, d.attempts.Load())
				if tc.wantErr == "" {
					assert.NoError(t, err)
				} else {
					assert.ErrorContains(t, err, tc.wantErr)
				}
			})
		})
	}
}

func TestAppProbeSharesOnePoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &fakeDialer{upAt: time.Now().Add(time.Second)}
		p, err := NewAppProbe(AppProbeConfig{Address: "127.0.0.1:1", Dial: d.dial})
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { assert.NoError(t, p.Check(context.Background())) })
		}
		wg.Wait()
		assert.Equal(t, int32(21), d.attempts.Load(), "five callers, one poll: 0, 50ms … 1s")

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.upAt = time.Now().Add(time.Hour)
		assert.ErrorIs(t, p.Check(ctx), context.Canceled, "a caller may leave early")
		time.Sleep(time.Minute) // the abandoned poll finishes on its own
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestAppProbeHTTP(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		wantErr string
	}{
		{name: "200", status: 200},
		{name: "redirect counts as up", status: 302},
		{name: "500 is not ready", status: 500, wantErr: "queue: probe GET http://127.0.0.1:8080/healthz: status 500"},
		{name: "404 is not ready", status: 404, wantErr: "status 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			p, err := NewAppProbe(AppProbeConfig{Address: "127.0.0.1:8080", Path: "/healthz", MaxWait: time.Nanosecond,
				Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					got = r
					return &http.Response{StatusCode: tc.status, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{"Location": {"/x"}}}, nil
				})})
			require.NoError(t, err)
			err = p.Check(context.Background())
			if tc.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.wantErr)
			}
			require.NotNil(t, got)
			assert.Equal(t, "http://127.0.0.1:8080/healthz", got.URL.String())
			assert.Equal(t, http.MethodGet, got.Method)
		})
	}
}

func TestAppProbeRealNetwork(t *testing.T) {
	app := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	addr := app.Listener.Addr().String()
	for _, path := range []string{"", "/healthz"} {
		p, err := NewAppProbe(AppProbeConfig{Address: addr, Path: path})
		require.NoError(t, err)
		assert.NoError(t, p.Check(context.Background()), "path %q", path)
	}
	p, err := NewAppProbe(AppProbeConfig{Address: addr, Path: "/missing", MaxWait: time.Nanosecond})
	require.NoError(t, err)
	assert.ErrorContains(t, p.Check(context.Background()), "status 404")

	h, err := NewSidecar(SidecarConfig{Target: addr, Probe: AppProbeConfig{Path: "/healthz"}})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, serve(h, get(ProbeHeader, ProbeHeaderValue)).Code)
}
