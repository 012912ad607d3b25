package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scripted returns attempt results in order, then the last one forever,
// and records when each attempt was made.
func scripted(start time.Time, results []bool, at *[]time.Duration) func(context.Context) error {
	i := 0
	return func(context.Context) error {
		*at = append(*at, time.Since(start))
		ok := results[min(i, len(results)-1)]
		i++
		if ok {
			return nil
		}
		return errors.New("refused")
	}
}

type change struct {
	at time.Duration
	ok bool
}

// The readiness loop follows Kubernetes: the first attempt after
// initialDelaySeconds, one every periodSeconds, ready after
// successThreshold passes in a row, not ready after failureThreshold
// failures in a row.
func TestProberReadinessThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		var changes []change
		p := newProber(&ProbeSpec{Kind: "tcp", InitialDelay: 2 * time.Second, Period: time.Second, Timeout: time.Second,
			SuccessThreshold: 2, FailureThreshold: 3}, 1, nil, "")
		//                      attempt at: 2s     3s     4s    5s    6s     7s     8s    9s
		p.attempt = scripted(start, []bool{false, true, true, false, false, false, true, true}, &at)
		ctx, cancel := context.WithCancel(context.Background())
		go p.run(ctx, func(r probeResult) {
			if r.ok || len(changes) == 0 || changes[len(changes)-1].ok {
				changes = append(changes, change{time.Since(start), r.ok})
			}
		})
		time.Sleep(9500 * time.Millisecond)
		cancel()
		synctest.Wait()
		s := time.Second
		assert.Equal(t, []time.Duration{2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s, 9 * s}, at)
		assert.Equal(t, []change{
			{2 * s, false}, // the first failure is reported (why not ready)
			{4 * s, true},  // two passes in a row
			{7 * s, false}, // three failures in a row
			{9 * s, true},
		}, changes)
	})
}

// Without periodSeconds an HTTP or TCP readiness probe is aggressive until
// the first success: attempts a tenth of the elapsed time apart, 1 ms at
// first, then every period.
func TestProberAggressiveUntilReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		p := newProber(nil, 1, nil, "") // the default: TCP, aggressive, period 10 s
		p.attempt = scripted(start, []bool{false, false, true}, &at)
		ctx, cancel := context.WithCancel(context.Background())
		go p.run(ctx, func(probeResult) {})
		time.Sleep(25 * time.Second)
		cancel()
		synctest.Wait()
		ms := time.Millisecond
		assert.Equal(t, []time.Duration{0, 1 * ms, 2 * ms, 10002 * ms, 20002 * ms}, at)
	})
}

// A program that starts answering at some moment is noticed soon after:
// within a tenth of its start-up (at least 1 ms), where Knative's fixed
// 50 ms period waits up to 50 ms. Exec probes keep the 50 ms.
func TestProberNoticesStartSoon(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		up       time.Duration // the program answers from then on
		noticed  time.Duration // the first passing attempt, at most
		attempts int           // failed attempts before, at most
	}{
		{"tcp", 0, 0, 0},
		{"tcp", 500 * time.Microsecond, time.Millisecond, 1},
		{"tcp", 20 * time.Millisecond, 22 * time.Millisecond, 20},
		{"http", 35 * time.Millisecond, 39 * time.Millisecond, 25},
		{"http", 300 * time.Millisecond, 330 * time.Millisecond, 46},
		{"http", 2 * time.Second, 2050 * time.Millisecond, 82},
		{"exec", 35 * time.Millisecond, 50 * time.Millisecond, 1},
	} {
		t.Run(fmt.Sprintf("%s-%v", tc.kind, tc.up), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				p := newProber(&ProbeSpec{Kind: tc.kind, Command: []string{"true"}, Period: 10 * time.Second, Timeout: time.Second,
					SuccessThreshold: 1, FailureThreshold: 3, Aggressive: true}, 1, nil, "")
				failed := 0
				p.attempt = func(context.Context) error {
					if time.Since(start) >= tc.up {
						return nil
					}
					failed++
					return errors.New("refused")
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				readyAt := make(chan time.Duration, 1)
				go p.run(ctx, func(r probeResult) {
					if r.ok {
						readyAt <- time.Since(start)
					}
				})
				got := <-readyAt
				assert.GreaterOrEqual(t, got, tc.up)
				assert.LessOrEqual(t, got, tc.noticed, "noticed late")
				assert.LessOrEqual(t, failed, tc.attempts, "too many attempts")
				cancel()
				synctest.Wait()
			})
		})
	}
}

func TestStartupGap(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct{ elapsed, want time.Duration }{
		{0, ms}, {5 * ms, ms}, {10 * ms, ms}, {35 * ms, 3500 * time.Microsecond},
		{200 * ms, 20 * ms}, {500 * ms, 50 * ms}, {10 * time.Second, 50 * ms},
	} {
		assert.Equal(t, tc.want, startupGap(tc.elapsed), "after %v", tc.elapsed)
	}
}

// A liveness probe reports the program dead after failureThreshold
// failures in a row, once.
func TestProberLiveness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var at []time.Duration
		p := newProber(&ProbeSpec{Kind: "http", Path: "/", Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 2}, 1, nil, "")
		p.attempt = scripted(start, []bool{true, false, true, false, false}, &at)
		var dead []time.Duration
		p.runLiveness(context.Background(), func(error) { dead = append(dead, time.Since(start)) })
		assert.Equal(t, []time.Duration{4 * time.Second}, dead, "after the 2nd failure in a row, at 4 s")
		assert.Len(t, at, 5)
	})
}

// A startup probe passes at its first success, or fails for good after
// failureThreshold failures in a row: the program has initialDelaySeconds
// + failureThreshold × periodSeconds to start.
func TestProberStartup(t *testing.T) {
	s := time.Second
	for _, tt := range []struct {
		name    string
		results []bool
		wantAt  []time.Duration // attempts
		wantErr string
	}{
		{"passes on the third attempt", []bool{false, false, true}, []time.Duration{s, 3 * s, 5 * s}, ""},
		{"passes at once", []bool{true}, []time.Duration{s}, ""},
		{"fails three times", []bool{false}, []time.Duration{s, 3 * s, 5 * s},
			"startup probe failed 3 times in a row: tcpSocket 127.0.0.1:1: refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				var at []time.Duration
				p := newProber(&ProbeSpec{Kind: "tcp", InitialDelay: s, Period: 2 * s, Timeout: s, SuccessThreshold: 1, FailureThreshold: 3}, 1, nil, "")
				p.attempt = scripted(start, tt.results, &at)
				var reports []string
				err := p.runStartup(context.Background(), func(err error) { reports = append(reports, err.Error()) })
				assert.Equal(t, tt.wantAt, at)
				assert.Equal(t, tt.wantAt[len(tt.wantAt)-1], time.Since(start), "returns at the deciding attempt")
				if tt.wantErr == "" {
					assert.NoError(t, err)
				} else {
					assert.EqualError(t, err, tt.wantErr)
				}
				if len(at) > 1 {
					assert.Equal(t, []string{"startup probe tcpSocket 127.0.0.1:1: refused"}, reports, "each new message once")
				}
			})
		})
	}
}

// With a startup probe, the readiness and liveness probes start only once
// it passed; if it fails for good, they never start and the program is
// restarted (StartupProbeFailed).
func TestRunProbesStartupFirst(t *testing.T) {
	s := time.Second
	spec := func(period time.Duration, failures int) *ProbeSpec {
		return &ProbeSpec{Kind: "tcp", Period: period, Timeout: s, SuccessThreshold: 1, FailureThreshold: failures}
	}
	t.Run("passes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var startAt, readyAt, liveAt []time.Duration
			sp, rp, lp := newProber(spec(2*s, 5), 1, nil, ""), newProber(spec(10*s, 3), 1, nil, ""), newProber(spec(10*s, 3), 1, nil, "")
			sp.attempt = scripted(start, []bool{false, false, true}, &startAt)
			rp.attempt = scripted(start, []bool{true}, &readyAt)
			lp.attempt = scripted(start, []bool{true}, &liveAt)
			var results []probeResult
			var dead []exitInfo
			ctx, cancel := context.WithCancel(context.Background())
			go runProbes(ctx, sp, rp, lp, func(r probeResult) { results = append(results, r) }, func(x exitInfo) { dead = append(dead, x) })
			time.Sleep(15 * s)
			cancel()
			synctest.Wait()
			assert.Equal(t, []time.Duration{0, 2 * s, 4 * s}, startAt)
			assert.Equal(t, []time.Duration{4 * s, 14 * s}, readyAt, "readiness from the startup probe's success on")
			assert.Equal(t, []time.Duration{4 * s, 14 * s}, liveAt, "liveness too")
			assert.Empty(t, dead)
			require.Len(t, results, 2)
			assert.ErrorContains(t, results[0].err, "startup probe tcpSocket", "not ready, and why, while starting")
			assert.True(t, results[1].ok)
		})
	})
	t.Run("fails", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var startAt, readyAt, liveAt []time.Duration
			sp, rp, lp := newProber(spec(2*s, 3), 1, nil, ""), newProber(spec(10*s, 3), 1, nil, ""), newProber(spec(10*s, 3), 1, nil, "")
			sp.attempt = scripted(start, []bool{false}, &startAt)
			rp.attempt = scripted(start, []bool{true}, &readyAt)
			lp.attempt = scripted(start, []bool{true}, &liveAt)
			var dead []exitInfo
			var deadAt time.Duration
			runProbes(context.Background(), sp, rp, lp, func(probeResult) {}, func(x exitInfo) {
				dead, deadAt = append(dead, x), time.Since(start)
			})
			synctest.Wait()
			assert.Equal(t, 4*s, deadAt, "failureThreshold (3) attempts, periodSeconds (2 s) apart")
			require.Len(t, dead, 1)
			assert.Equal(t, "StartupProbeFailed", dead[0].Reason)
			assert.Contains(t, dead[0].Message, "startup probe failed 3 times in a row")
			assert.Empty(t, readyAt, "readiness never started")
			assert.Empty(t, liveAt, "liveness never started")
		})
	})
}

// An exec probe runs as in a container: its command is found in the
// program's PATH (not the platform's), in the program's environment and
// working directory; a failure carries the command's output.
func TestProberExecInProgramEnvironment(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	require.NoError(t, os.Mkdir(bin, 0o700))
	script := "#!/bin/sh\n[ \"$(pwd)\" = \"$WANT_DIR\" ] || { echo \"wrong directory $(pwd)\"; exit 1; }\n[ -z \"$FAIL\" ] || { echo \"failing: $FAIL\"; exit 2; }\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "healthy"), []byte(script), 0o700))
	env := []string{"PATH=" + bin + ":/usr/bin:/bin", "WANT_DIR=" + dir}
	spec := &ProbeSpec{Kind: "exec", Command: []string{"healthy"}, Timeout: 10 * time.Second}
	p := newProber(spec, 1, env, dir)
	require.NoError(t, p.check(context.Background()), "found in the program's PATH, run in its directory")

	p = newProber(spec, 1, append(env, "FAIL=because"), dir)
	assert.ErrorContains(t, p.check(context.Background()), "exit status 2: failing: because")

	p = newProber(spec, 1, []string{"PATH=/usr/bin:/bin"}, dir)
	assert.ErrorContains(t, p.check(context.Background()), `"healthy": executable file not found in $PATH (/usr/bin:/bin)`)
}

// answer reads one request on c and writes resp (and then closes c if
// closeAfter), and passes the request on (nil if none came).
func answer(c net.Conn, resp string, closeAfter bool) <-chan *http.Request {
	got := make(chan *http.Request, 1)
	go func() {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			got <- nil
			return
		}
		_, _ = io.WriteString(c, resp)
		if closeAfter {
			c.Close()
		}
		got <- req
	}()
	return got
}

// watched returns a watch that reports a refusal, waits until up and
// then returns ours (the test holds the program's end).
func watched(up time.Duration, ours net.Conn) func(context.Context, func(error)) (net.Conn, error) {
	return func(ctx context.Context, refused func(error)) (net.Conn, error) {
		refused(errors.New("connect: connection refused"))
		if !sleepCtx(ctx, up) {
			return nil, ctx.Err()
		}
		return ours, nil
	}
}

// With a watch, an aggressive probe makes its first attempt when the port
// first accepts a connection, at once and on it: a TCP probe passes with
// it, and hands it on.
func TestProberWatchTCP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		ours, theirs := net.Pipe()
		defer theirs.Close()
		p := newProber(nil, 1, nil, "") // the default: TCP, aggressive
		var at []time.Duration
		p.attempt = scripted(start, []bool{true}, &at)
		p.watch = watched(20*time.Millisecond, ours)
		var kept []net.Conn
		p.keep = func(c net.Conn) { kept = append(kept, c) }
		var results []string
		ctx, cancel := context.WithCancel(context.Background())
		go p.run(ctx, func(r probeResult) {
			if r.ok {
				results = append(results, fmt.Sprintf("ready at %v", time.Since(start)))
			} else {
				results = append(results, r.err.Error())
			}
		})
		time.Sleep(time.Second)
		cancel()
		synctest.Wait()
		assert.Equal(t, []string{"tcpSocket 127.0.0.1:1: connect: connection refused", "ready at 20ms"}, results)
		assert.Equal(t, []net.Conn{ours}, kept)
		assert.Empty(t, at, "no other attempt before the period")
	})
}

// An HTTP probe sends its first request on the watch's connection, as the
// kubelet would but without asking to close it, and hands the connection
// on when the answer keeps it open and idle.
func TestProberWatchHTTP(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
	for _, tc := range []struct {
		name       string
		answer     string
		closeAfter bool
		ready      bool
		kept       bool
	}{
		{"kept alive", ok, false, true, true},
		{"a redirect is an answer", "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", false, true, true},
		{"early hints first", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + ok, false, true, true},
		{"closed by the program", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nok\n", false, true, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n", false, true, false},
		{"body to the end of the connection", "HTTP/1.1 200 OK\r\n\r\nok\n", true, true, false},
		{"body over 10 KiB", "HTTP/1.1 200 OK\r\nContent-Length: 10241\r\n\r\n" + strings.Repeat("x", 10241), false, true, false},
		{"more than the answer", ok + "HTTP/1.1 200 OK\r\n", false, true, false},
		{"not ready", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", false, false, true},
		{"answer cut off", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				ours, theirs := net.Pipe()
				defer theirs.Close()
				p := newProber(&ProbeSpec{Kind: "http", Path: "/healthz", Headers: [][]string{{"Host", "app.example"}, {"X-Probe", "1"}},
					Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3, Aggressive: true}, 8080, nil, "")
				var at []time.Duration
				p.attempt = scripted(start, []bool{false}, &at)
				p.watch = watched(20*time.Millisecond, ours)
				var kept []net.Conn
				p.keep = func(c net.Conn) { kept = append(kept, c) }
				got := answer(theirs, tc.answer, tc.closeAfter)
				var readyAt time.Duration
				var failures []string
				ctx, cancel := context.WithCancel(context.Background())
				go p.run(ctx, func(r probeResult) {
					if r.ok {
						readyAt = time.Since(start)
					} else {
						failures = append(failures, r.err.Error())
					}
				})
				time.Sleep(30 * time.Millisecond)
				cancel()
				synctest.Wait()

				req := <-got
				require.NotNil(t, req)
				assert.Equal(t, "/healthz", req.URL.Path)
				assert.Equal(t, "app.example", req.Host)
				assert.Equal(t, "kube-probe/1.31", req.UserAgent())
				assert.Equal(t, "1", req.Header.Get("X-Probe"))
				assert.False(t, req.Close, "no Connection: close")
				if tc.ready {
					assert.Equal(t, 20*time.Millisecond, readyAt, "ready on the first attempt, as the port accepted")
					assert.Empty(t, at)
				} else {
					assert.Zero(t, readyAt)
					require.GreaterOrEqual(t, len(failures), 2)
					assert.Equal(t, "httpGet http://127.0.0.1:8080/healthz: connect: connection refused", failures[0], "while the port refused")
					if tc.closeAfter {
						assert.Contains(t, failures[1], "unexpected EOF")
					} else {
						assert.Equal(t, "httpGet http://127.0.0.1:8080/healthz: HTTP probe failed with statuscode: 503", failures[1])
					}
					// Then the usual schedule: a tenth of the elapsed time.
					assert.Equal(t, []time.Duration{22 * time.Millisecond, 24200 * time.Microsecond, 26620 * time.Microsecond, 29282 * time.Microsecond}, at)
				}
				if tc.kept {
					assert.Equal(t, []net.Conn{ours}, kept)
				} else {
					assert.Empty(t, kept)
					if !tc.closeAfter {
						_, err := theirs.Read(make([]byte, 1))
						assert.ErrorIs(t, err, io.EOF, "closed")
					}
				}
			})
		})
	}
}

// A watch that fails (not a refusal) leaves the attempts to the usual
// schedule, the first at once.
func TestProberWatchFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := newProber(nil, 1, nil, "")
		var at []time.Duration
		p.attempt = scripted(start, []bool{false, true}, &at)
		p.watch = func(context.Context, func(error)) (net.Conn, error) {
			time.Sleep(5 * time.Millisecond)
			return nil, errors.New("connect: resource temporarily unavailable")
		}
		ctx, cancel := context.WithCancel(context.Background())
		go p.run(ctx, func(probeResult) {})
		time.Sleep(20 * time.Millisecond)
		cancel()
		synctest.Wait()
		assert.Equal(t, []time.Duration{5 * time.Millisecond, 6 * time.Millisecond}, at)
	})
}

// Exec probes, and probes with periodSeconds, do not watch.
func TestProberWatchOnlyAggressiveHTTPAndTCP(t *testing.T) {
	for _, spec := range []*ProbeSpec{
		{Kind: "exec", Command: []string{"true"}, Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3, Aggressive: true},
		{Kind: "tcp", Period: time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3},
	} {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			p := newProber(spec, 1, nil, "")
			var at []time.Duration
			p.attempt = scripted(start, []bool{true}, &at)
			p.watch = func(context.Context, func(error)) (net.Conn, error) {
				t.Errorf("%s watched", spec.Kind)
				return nil, errors.New("no")
			}
			ctx, cancel := context.WithCancel(context.Background())
			go p.run(ctx, func(probeResult) {})
			time.Sleep(time.Millisecond)
			cancel()
			synctest.Wait()
			assert.Equal(t, []time.Duration{0}, at)
		})
	}
}
