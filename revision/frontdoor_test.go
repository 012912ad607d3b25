package revision

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tagHandler answers 200 with its tag and the revision header it saw.
func tagHandler(tag string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, tag+" "+r.Header.Get(RevisionHeader))
	})
}

func do(h http.Handler, r *http.Request) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Code, rec.Body.String()
}

func TestFrontDoorRoutes(t *testing.T) {
	fd, err := NewFrontDoor("default/hello-00001", tagHandler("activator"), tagHandler("serve"))
	require.NoError(t, err)
	assert.Equal(t, Proxy, fd.Mode(), "a new front door proxies")
	assert.Equal(t, "default/hello-00001", fd.Key())

	tests := []struct {
		name   string
		mode   Mode
		header string // incoming RevisionHeader
		body   string
	}{
		{"proxy sets the revision header", Proxy, "", "activator default/hello-00001"},
		{"proxy overwrites a forged header", Proxy, "other/rev", "activator default/hello-00001"},
		{"serve leaves the request alone", Serve, "", "serve "},
		{"serve does not touch a header", Serve, "x", "serve x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd.SetMode(tc.mode)
			assert.Equal(t, tc.mode, fd.Mode())
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set(RevisionHeader, tc.header)
			}
			code, body := do(fd, r)
			assert.Equal(t, http.StatusOK, code)
			assert.Equal(t, tc.body, body)
			var want []string
			if tc.header != "" {
				want = []string{tc.header}
			}
			assert.Equal(t, want, r.Header.Values(RevisionHeader), "the caller's request is not changed")
		})
	}

	t.Run("nil header map", func(t *testing.T) {
		fd.SetMode(Proxy)
		r := &http.Request{Method: "GET"}
		_, body := do(fd, r)
		assert.Equal(t, "activator default/hello-00001", body)
	})

	t.Run("adding to the shared header value copies it", func(t *testing.T) {
		var seen []string
		mutate := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Add(RevisionHeader, "extra")
			seen = r.Header.Values(RevisionHeader)
		})
		fd2, err := NewFrontDoor("k", mutate, tagHandler("serve"))
		require.NoError(t, err)
		do(fd2, httptest.NewRequest("GET", "/", nil))
		assert.Equal(t, []string{"k", "extra"}, seen)
		assert.Equal(t, []string{"k"}, fd2.header, "the shared value is untouched for the next request")
	})
}

// revisionServer is an activator with ServeRevision.
type revisionServer struct{ got string }

func (a *revisionServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	panic("the front door must call ServeRevision")
}

func (a *revisionServer) ServeRevision(w http.ResponseWriter, r *http.Request, revision string) {
	a.got = revision
	w.WriteHeader(http.StatusAccepted)
}

// TestFrontDoorCallsServeRevision: an activator that takes the key gets it
// directly; the request is not marked, not copied, and nothing allocates.
func TestFrontDoorCallsServeRevision(t *testing.T) {
	act := new(revisionServer)
	fd, err := NewFrontDoor("ns/rev", act, tagHandler("serve"))
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(RevisionHeader, "forged/rev")
	code, _ := do(fd, r)
	assert.Equal(t, http.StatusAccepted, code)
	assert.Equal(t, "ns/rev", act.got, "the front door's key, not the request's header")
	assert.Equal(t, []string{"forged/rev"}, r.Header.Values(RevisionHeader))
}

// TestFrontDoorAllocs pins "the request path does not allocate": in Serve
// mode, and in Proxy mode to a RevisionServer.
func TestFrontDoorAllocs(t *testing.T) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	fd, err := NewFrontDoor("ns/rev", new(revisionServer), noop)
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	for _, m := range []Mode{Proxy, Serve} {
		fd.SetMode(m)
		assert.Zero(t, testing.AllocsPerRun(1000, func() { fd.ServeHTTP(w, r) }), "allocations per request in %v mode", m)
	}
}

func TestNewFrontDoorErrors(t *testing.T) {
	_, err := NewFrontDoor("", nil, nil)
	require.Error(t, err)
	for _, m := range []string{"key is empty", "activator handler is nil", "serve handler is nil"} {
		assert.Contains(t, err.Error(), m)
	}
}

// TestFrontDoorFlipUnderLoad flips the mode back and forth while many
// goroutines send requests: every request must succeed, reach exactly one
// of the two handlers, and carry the header exactly when proxied. Run with
// -race.
func TestFrontDoorFlipUnderLoad(t *testing.T) {
	var proxied, served, bad atomic.Int64
	activator := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(RevisionHeader) != "ns/rev" {
			bad.Add(1)
		}
		proxied.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(RevisionHeader) != "" {
			bad.Add(1)
		}
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	fd, err := NewFrontDoor("ns/rev", activator, serve)
	require.NoError(t, err)

	const workers, perWorker = 8, 2000
	stop := make(chan struct{})
	flips := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				flips <- n
				return
			default:
				fd.SetMode(Mode(n % 2))
				n++
			}
		}
	}()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range workers {
		wg.Go(func() {
			for range perWorker {
				code, _ := do(fd, httptest.NewRequest("GET", "/", nil))
				if code != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	n := <-flips

	assert.Zero(t, failed.Load(), "failed requests")
	assert.Zero(t, bad.Load(), "requests with the wrong header for their handler")
	assert.Equal(t, int64(workers*perWorker), proxied.Load()+served.Load(), "every request reached exactly one handler")
	assert.Positive(t, n, "the mode flipped")
	t.Logf("%d flips, %d proxied, %d served", n, proxied.Load(), served.Load())
}

// TestFrontDoorInFlightSurvivesSwitch holds a request in the activator,
// switches to Serve, and checks the held request still completes there
// while new requests go to the replicas.
func TestFrontDoorInFlightSurvivesSwitch(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	activator := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "activator")
	})
	fd, err := NewFrontDoor("ns/rev", activator, tagHandler("serve"))
	require.NoError(t, err)

	held := make(chan string)
	go func() {
		code, body := do(fd, httptest.NewRequest("GET", "/", nil))
		held <- http.StatusText(code) + " " + body
	}()
	<-entered
	fd.SetMode(Serve)
	_, body := do(fd, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, "serve ", body)
	close(release)
	assert.Equal(t, "OK activator", <-held)
}

type noopWriter struct{ h http.Header }

func (w *noopWriter) Header() http.Header         { return w.h }
func (w *noopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *noopWriter) WriteHeader(int)             {}

var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// naiveDoor is the obvious baseline: a mutex-guarded mode and Header.Set.
type naiveDoor struct {
	mu         sync.RWMutex
	mode       Mode
	key        string
	act, serve http.Handler
}

func (d *naiveDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.RLock()
	m := d.mode
	d.mu.RUnlock()
	if m == Proxy {
		r.Header.Set(RevisionHeader, d.key)
		d.act.ServeHTTP(w, r)
		return
	}
	d.serve.ServeHTTP(w, r)
}

func BenchmarkFrontDoor(b *testing.B) {
	fd, err := NewFrontDoor("default/hello-00001", noop, noop)
	if err != nil {
		b.Fatal(err)
	}
	naive := &naiveDoor{key: "default/hello-00001", act: noop, serve: noop}
	for _, impl := range []struct {
		name string
		h    http.Handler
		set  func(Mode)
	}{
		{"servingkit", fd, fd.SetMode},
		{"naive", naive, func(m Mode) { naive.mu.Lock(); naive.mode = m; naive.mu.Unlock() }},
	} {
		for _, m := range []Mode{Proxy, Serve} {
			impl.set(m)
			b.Run(impl.name+"/"+m.String()+"/sequential", func(b *testing.B) {
				r := httptest.NewRequest("GET", "/", nil)
				w := &noopWriter{h: http.Header{}}
				b.ReportAllocs()
				for b.Loop() {
					impl.h.ServeHTTP(w, r)
				}
			})
			b.Run(impl.name+"/"+m.String()+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					r := httptest.NewRequest("GET", "/", nil)
					w := &noopWriter{h: http.Header{}}
					for pb.Next() {
						impl.h.ServeHTTP(w, r)
					}
				})
			})
		}
	}
}
