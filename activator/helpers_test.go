package activator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeBackend is a RoundTripper standing in for a revision's replicas. It
// records what each replica received and how many requests it had in
// flight at most. A request takes delay (fake time under synctest), or
// waits on gate if gate is set, or until its context ends.
type fakeBackend struct {
	delay time.Duration
	gate  chan struct{} // if not nil, each request waits for a value

	mu          sync.Mutex
	inFlight    map[string]int
	maxInFlight map[string]int
	count       map[string]int
	starts      map[string]time.Time // request "i" query value → start time
	last        *http.Request        // last request received
}

func newFakeBackend(delay time.Duration) *fakeBackend {
	return &fakeBackend{
		delay:       delay,
		inFlight:    map[string]int{},
		maxInFlight: map[string]int{},
		count:       map[string]int{},
		starts:      map[string]time.Time{},
	}
}

func (b *fakeBackend) RoundTrip(r *http.Request) (*http.Response, error) {
	host := r.URL.Host
	b.mu.Lock()
	b.inFlight[host]++
	b.count[host]++
	b.maxInFlight[host] = max(b.maxInFlight[host], b.inFlight[host])
	if i := r.URL.Query().Get("i"); i != "" {
		b.starts[i] = time.Now()
	}
	b.last = r
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight[host]--
		b.mu.Unlock()
	}()
	var wait <-chan time.Time
	if b.delay > 0 {
		tm := time.NewTimer(b.delay)
		defer tm.Stop()
		wait = tm.C
	}
	if b.gate != nil || wait != nil {
		select {
		case <-b.gate:
		case <-wait:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	body := "hello from " + host
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}, nil
}

func (b *fakeBackend) counts() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.count {
		out[k] = v
	}
	return out
}

func (b *fakeBackend) max(host string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.maxInFlight[host]
}

func (b *fakeBackend) start(i int) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.starts[fmt.Sprint(i)]
	return s, ok
}

func newTestHandler(t testing.TB, o Options) *Handler {
	t.Helper()
	h, err := New(o)
	require.NoError(t, err)
	return h
}

func newTestThrottler(t testing.TB, o ThrottlerOptions) *Throttler {
	t.Helper()
	th, err := NewThrottler(o)
	require.NoError(t, err)
	return th
}

// request builds a request for revision rev; i tags it for fakeBackend.
func request(rev string, i int) *http.Request {
	r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("http://example.com/path?i=%d", i), nil)
	if rev != "" {
		r.Header.Set(RevisionHeader, rev)
	}
	return r
}

// serve runs one request in a goroutine and returns its recorder and a
// channel closed when it is answered.
func serve(h http.Handler, r *http.Request) (*httptest.ResponseRecorder, <-chan struct{}) {
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(rec, r)
	}()
	return rec, done
}

// coldStarts collects OnColdStart reports.
type coldStarts struct {
	mu   sync.Mutex
	list []ColdStart
}

func (c *coldStarts) hook(cs ColdStart) {
	c.mu.Lock()
	c.list = append(c.list, cs)
	c.mu.Unlock()
}

func (c *coldStarts) all() []ColdStart {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ColdStart(nil), c.list...)
}

func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.0.%d.%d:8012", i/250, i%250+1)
	}
	return out
}

func mustShutdown(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	require.NoError(t, h.Shutdown(ctx))
}
