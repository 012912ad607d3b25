package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sleepApp takes the duration in its X-Takes header.
var sleepApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	d, _ := time.ParseDuration(r.Header.Get("X-Takes"))
	time.Sleep(d)
	_, _ = io.WriteString(w, "ok")
})

func TestDrainScenarios(t *testing.T) {
	const s = time.Second
	type arrival struct{ at, takes time.Duration }
	tests := []struct {
		name     string
		c        Config
		arrivals []arrival
		probesAt []time.Duration // probes do not extend the quiet period
		drainAt  time.Duration   // when Drain returns, from its call at 0
	}{
		{name: "idle replica waits one quiet period", c: Config{QuietPeriod: 30 * s}, drainAt: 30 * s},
		{name: "each request restarts the quiet period", c: Config{QuietPeriod: 30 * s},
			arrivals: []arrival{{10 * s, 5 * s}, {25 * s, 5 * s}}, probesAt: []time.Duration{40 * s, 50 * s}, drainAt: 55 * s},
		{name: "a long request is waited for", c: Config{QuietPeriod: 30 * s},
			arrivals: []arrival{{20 * s, 100 * s}}, drainAt: 120 * s},
		{name: "MaxQuietPeriod caps steady traffic", c: Config{QuietPeriod: 30 * s, MaxQuietPeriod: 60 * s},
			arrivals: []arrival{{5 * s, s}, {15 * s, s}, {25 * s, s}, {35 * s, s}, {45 * s, s}, {55 * s, s}, {65 * s, s}, {75 * s, s}},
			drainAt:  60 * s},
		{name: "a request arriving after the drain is served", c: Config{QuietPeriod: 30 * s},
			arrivals: []arrival{{50 * s, 40 * s}}, drainAt: 30 * s},
		{name: "the cap does not cut a request short", c: Config{QuietPeriod: 30 * s, MaxQuietPeriod: 40 * s},
			arrivals: []arrival{{20 * s, 70 * s}}, drainAt: 90 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := mustNew(t, sleepApp, tc.c)
				start := time.Now()
				drained := make(chan time.Duration)
				go func() {
					assert.NoError(t, h.Drain(context.Background()))
					drained <- time.Since(start)
				}()
				synctest.Wait()
				assert.True(t, h.Draining())
				assert.ErrorIs(t, h.CheckReady(context.Background()), ErrDraining)

				var wg sync.WaitGroup
				for _, a := range tc.arrivals {
					wg.Go(func() {
						time.Sleep(a.at)
						w := serve(h, get("X-Takes", a.takes.String()))
						assert.Equal(t, http.StatusOK, w.Code, "a request that arrives while draining is served")
					})
				}
				for _, at := range tc.probesAt {
					wg.Go(func() {
						time.Sleep(at)
						w := serve(h, get(ProbeHeader, ProbeHeaderValue))
						assert.Equal(t, http.StatusServiceUnavailable, w.Code)
						assert.Equal(t, "queue: draining\n", w.Body.String())
					})
				}
				assert.Equal(t, tc.drainAt, <-drained)
				wg.Wait()
				assert.Equal(t, 0, h.InFlight())
			})
		})
	}
}

// TestDrainUnderConcurrentLoad: clients keep sending while the replica
// drains; every request is served, and Drain returns only once the last one
// has finished and a quiet period has passed since the last arrival.
func TestDrainUnderConcurrentLoad(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const clients = 40
				c := Config{ContainerConcurrency: 16, QueueDepth: 1000, QuietPeriod: 2 * time.Second, MaxQuietPeriod: 20 * time.Second}
				if timed {
					c.TotalTimeout = time.Minute
				}
				h := mustNew(t, sleepApp, c)
				start := time.Now()
				type result struct {
					arrived, finished time.Duration
					status            int
				}
				results := make(chan result, 100000)
				var wg sync.WaitGroup
				for i := range clients {
					rng := rand.New(rand.NewPCG(1, uint64(i)))
					wg.Go(func() {
						// Send until 5 s, two seconds into the drain.
						for time.Since(start) < 5*time.Second {
							time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
							takes := time.Duration(rng.IntN(200)) * time.Millisecond
							arrived := time.Since(start)
							w := serve(h, get("X-Takes", takes.String()))
							results <- result{arrived, time.Since(start), w.Code}
						}
					})
				}
				// Probes see the drain begin.
				wg.Go(func() {
					for time.Since(start) < 6*time.Second {
						want := http.StatusOK
						if time.Since(start) >= 3*time.Second {
							want = http.StatusServiceUnavailable
						}
						assert.Equal(t, want, serve(h, get(ProbeHeader, ProbeHeaderValue)).Code, "at %v", time.Since(start))
						time.Sleep(100*time.Millisecond + time.Microsecond)
					}
				})

				time.Sleep(3 * time.Second)
				require.NoError(t, h.Drain(context.Background()))
				drainedAt := time.Since(start)
				wg.Wait()
				close(results)

				var n int
				var lastArrival, lastFinish time.Duration
				for r := range results {
					n++
					assert.Equal(t, http.StatusOK, r.status, "no request dropped")
					lastArrival = max(lastArrival, r.arrived)
					lastFinish = max(lastFinish, r.finished)
				}
				assert.Greater(t, n, 500, "load was real")
				assert.Greater(t, lastArrival, 3*time.Second, "requests arrived during the drain")
				assert.Equal(t, max(lastArrival+c.QuietPeriod, lastFinish), drainedAt)
				assert.Equal(t, 0, h.InFlight())
				assert.Equal(t, 0, h.Breaker().Pending())
				rep := h.Recorder().Report(time.Now())
				assert.Equal(t, uint64(n), rep.Requests)
			})
		})
	}
}

// hijackRecorder is a ResponseWriter whose connection can be hijacked; the
// test holds the client's end of the pipe.
type hijackRecorder struct {
	*httptest.ResponseRecorder
	server, client net.Conn
}

func newHijackRecorder() *hijackRecorder {
	s, c := net.Pipe()
	return &hijackRecorder{ResponseRecorder: httptest.NewRecorder(), server: s, client: c}
}

func (w *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.server, bufio.NewReadWriter(bufio.NewReader(w.server), bufio.NewWriter(w.server)), nil
}

// upgradeApp hijacks, greets, and echoes from a goroutine of its own after
// returning, the way many websocket libraries are used.
var upgradeApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") == "" {
		_, _ = io.WriteString(w, "plain")
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	_ = brw.Flush()
	go func() {
		defer conn.Close()
		_, _ = io.Copy(conn, brw)
	}()
})

func readUpgrade(t *testing.T, c net.Conn) *bufio.Reader {
	t.Helper()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return br
}

func echo(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	_, err := io.WriteString(c, msg+"\n")
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, msg+"\n", line)
}

func TestHijackedHoldsSlotAndDrainCapsIt(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := Config{ContainerConcurrency: 1, QuietPeriod: time.Second, HijackedDrainTimeout: 10 * time.Second}
				if timed {
					c.TotalTimeout = time.Second // does not apply to a hijacked connection
					c.IdleTimeout = time.Second
				}
				h := mustNew(t, upgradeApp, c)
				w := newHijackRecorder()
				go h.ServeHTTP(w, get("Connection", "Upgrade", "Upgrade", "echo"))
				br := readUpgrade(t, w.client)
				synctest.Wait()
				assert.Equal(t, 1, h.Hijacked())
				assert.Equal(t, 1, h.InFlight())
				assert.Equal(t, 1, h.Breaker().InFlight(), "the connection holds its slot after the handler returned")

				time.Sleep(5 * time.Second)
				echo(t, w.client, br, "still here after the request timeouts")

				// The slot is taken: another request waits.
				second := make(chan int)
				go func() { second <- serve(h, get()).Code }()
				synctest.Wait()
				assert.Equal(t, 1, h.Breaker().Waiting())

				start := time.Now()
				err := h.Drain(context.Background())
				assert.ErrorIs(t, err, ErrHijackedClosed)
				assert.ErrorContains(t, err, "1 still open after HijackedDrainTimeout (10s)")
				assert.Equal(t, 11*time.Second, time.Since(start), "quiet period, then the hijacked cap")
				_, err = br.ReadString('\n')
				assert.ErrorIs(t, err, io.EOF, "the client sees the connection closed")
				if timed {
					assert.Equal(t, http.StatusGatewayTimeout, <-second, "its own total timeout passed while the connection held the slot")
				} else {
					assert.Equal(t, http.StatusOK, <-second, "the waiting request got the slot")
				}
				assert.Equal(t, 0, h.InFlight())
				assert.Equal(t, 0, h.Breaker().Pending())
			})
		})
	}
}

func TestDrainWaitsForHijackedToClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, upgradeApp, Config{QuietPeriod: time.Second})
		w := newHijackRecorder()
		go h.ServeHTTP(w, get("Connection", "Upgrade", "Upgrade", "echo"))
		readUpgrade(t, w.client)
		time.AfterFunc(7*time.Second, func() { w.client.Close() })
		start := time.Now()
		require.NoError(t, h.Drain(context.Background()))
		assert.Equal(t, 7*time.Second, time.Since(start))
		assert.Equal(t, 0, h.InFlight())
	})
}

func TestDrainContextAndSharedResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := mustNew(t, sleepApp, Config{QuietPeriod: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.ErrorIs(t, h.Drain(ctx), context.DeadlineExceeded, "the caller gave up")
		assert.True(t, h.Draining(), "the drain goes on")
		start := time.Now()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { assert.NoError(t, h.Drain(context.Background())) })
		}
		wg.Wait()
		assert.Equal(t, 9*time.Second, time.Since(start), "every caller waits for the same drain")
		assert.NoError(t, h.Drain(context.Background()), "a finished drain returns at once")
		assert.Equal(t, 9*time.Second, time.Since(start))
		assert.Equal(t, http.StatusOK, serve(h, get()).Code, "still served after the drain")
	})
}

// TestHijackStress mixes hijacked and plain requests on many goroutines
// (run it with -race): the pooled writers and the books stay consistent.
func TestHijackStress(t *testing.T) {
	for _, timed := range []bool{false, true} {
		t.Run(map[bool]string{false: "untimed", true: "timed"}[timed], func(t *testing.T) {
			t.Parallel()
			c := Config{ContainerConcurrency: 4, QueueDepth: 100}
			if timed {
				c.TotalTimeout = time.Hour
			}
			h := mustNew(t, upgradeApp, c)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 100 {
						if (g+i)%4 != 0 {
							assert.Equal(t, "plain", serve(h, get()).Body.String())
							continue
						}
						w := newHijackRecorder()
						go h.ServeHTTP(w, get("Connection", "Upgrade", "Upgrade", "echo"))
						br := readUpgrade(t, w.client)
						echo(t, w.client, br, "x")
						w.client.Close()
					}
				})
			}
			wg.Wait()
			require.Eventually(t, func() bool { return h.InFlight() == 0 }, 10*time.Second, time.Millisecond)
			assert.Equal(t, 0, h.Breaker().Pending())
			total, _ := h.Recorder().InFlight()
			assert.Zero(t, total)
		})
	}
}

// TestDrainClosesConnectionsHijackedAfterTheCap: a websocket that was still
// waiting for a slot when HijackedDrainTimeout passed, and upgrades later,
// is closed too; Drain does not return while it is open.
func TestDrainClosesConnectionsHijackedAfterTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "" {
				upgradeApp(w, r)
				return
			}
			sleepApp(w, r)
		})
		h := mustNew(t, app, Config{ContainerConcurrency: 1, QuietPeriod: time.Second, HijackedDrainTimeout: 10 * time.Second})
		long := make(chan int)
		go func() { long <- serve(h, get("X-Takes", "30s")).Code }()
		synctest.Wait()
		w := newHijackRecorder()
		go h.ServeHTTP(w, get("Connection", "Upgrade", "Upgrade", "echo"))
		clientDone := make(chan error)
		go func() {
			br := bufio.NewReader(w.client)
			resp, err := http.ReadResponse(br, nil)
			if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			if err == nil {
				_, err = br.ReadString('\n')
			}
			clientDone <- err
		}()
		synctest.Wait()
		require.Equal(t, 1, h.Breaker().Waiting(), "the upgrade waits for the slot")

		start := time.Now()
		err := h.Drain(context.Background())
		assert.Equal(t, 30*time.Second, time.Since(start), "the long request was waited for")
		assert.ErrorIs(t, err, ErrHijackedClosed)
		assert.ErrorIs(t, <-clientDone, io.EOF, "the client sees the connection closed")
		assert.Equal(t, http.StatusOK, <-long)
		assert.Equal(t, 0, h.InFlight())
		assert.Equal(t, 0, h.Breaker().Pending())
	})
}

// TestDrainWithAnEndlessQuietPeriod: a quiet period meant as "forever" does
// not overflow into the past and end the drain at once. (On the real clock,
// outside a bubble: that drain never ends. The short wait is not a timing
// assertion: the drain must still be going, however long it is.)
func TestDrainWithAnEndlessQuietPeriod(t *testing.T) {
	h := mustNew(t, okApp, Config{QuietPeriod: math.MaxInt64})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, h.Drain(ctx), context.DeadlineExceeded, "still in the quiet period")
}
