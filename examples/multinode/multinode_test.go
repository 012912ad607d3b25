package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary is also the program: started with MULTINODE_CHILD=1 it
// runs the role its arguments name (the agent starts replicas the same
// way).
func TestMain(m *testing.M) {
	if os.Getenv("MULTINODE_CHILD") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addrs map[string]string
	log   string
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	p := &proc{name: name, cmd: exec.Command(self, args...), log: filepath.Join(t.TempDir(), name+".log")}
	p.cmd.Env = append(os.Environ(), "MULTINODE_CHILD=1")
	logf, err := os.Create(p.log)
	require.NoError(t, err)
	p.cmd.Stderr = logf
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	t.Cleanup(func() {
		_ = p.stdin.Close()
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("--- %s (last lines of its log)\n%s", name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "%s did not start", name)
	require.NoError(t, json.Unmarshal([]byte(line), &p.addrs))
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return p
}

// kill ends p at once, as a crash would.
func (p *proc) kill(t *testing.T) {
	require.NoError(t, p.cmd.Process.Kill())
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func getJSON(t *testing.T, url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

type counts struct{ Ready, Wanted int }

func replicaCount(t *testing.T, agent, rev string) counts {
	var c counts
	require.NoError(t, getJSON(t, agent+"/count?revision="+rev, &c))
	return c
}

// client sends requests to a service through the gateways, retrying a
// failed request on the next gateway, as a client behind a load balancer
// with retries would.
type client struct {
	gateways []string
	host     string
	http     *http.Client
	next     atomic.Uint64

	ok, failedAttempts, lost atomic.Int64
	served                   atomic.Int64 // ok without the activator's header: Serve mode
	mu                       sync.Mutex
	errs                     []string
	failedVia                map[string]int64 // failed attempts by gateway
}

func (c *client) do() bool {
	first := int(c.next.Add(1))
	for attempt := range 2 * len(c.gateways) {
		gw := c.gateways[(first+attempt)%len(c.gateways)]
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+"/", nil)
		req.Host = c.host
		resp, err := c.http.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.HasPrefix(string(body), "hello") {
				c.ok.Add(1)
				if resp.Header.Get(ActivatorWaitHeader) == "" {
					c.served.Add(1)
				}
				return true
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		c.failedAttempts.Add(1)
		c.mu.Lock()
		if c.failedVia == nil {
			c.failedVia = map[string]int64{}
		}
		c.failedVia[gw]++
		if len(c.errs) < 20 {
			c.errs = append(c.errs, fmt.Sprintf("via %s: %v", gw, err))
		}
		c.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	c.lost.Add(1)
	return false
}

// load runs n workers sending requests back to back until stop closes.
func (c *client) load(n int, stop <-chan struct{}, wg *sync.WaitGroup) {
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					c.do()
				}
			}
		})
	}
}

// failedThrough returns the failed attempts through gateway gw so far.
func (c *client) failedThrough(gw string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failedVia[gw]
}

func (c *client) errors() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.errs, "\n")
}

// scales returns every count the autoscalers asked the agent for rev.
func scales(t *testing.T, agent, rev string) []int {
	var n []int
	require.NoError(t, getJSON(t, agent+"/scales?revision="+rev, &n))
	return n
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// Two gateway+activator processes, two autoscaler processes, an agent and
// its replica processes, on loopback. Every stat goes first to the
// autoscaler that does not own the revisions, which forwards it to the
// owner. Scale from zero works through either gateway; under steady load,
// killing the autoscaler that owns the revision fails no request, and the
// other one takes over within seconds, never asks for fewer replicas than
// were ready, and scales up; killing a gateway loses nothing for clients
// that retry on the other, and the surviving gateway leaves the dead
// activator out.
func TestMultiNode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test: about a minute")
	}
	const work, cc = "100ms", "10" // target 7 per replica
	agentAddr, as1Addr, as2Addr := freeAddr(t), freeAddr(t), freeAddr(t)
	act1, act2 := freeAddr(t), freeAddr(t)
	agentURL := "http://" + agentAddr
	lockDir := t.TempDir()
	revs := "default/one-00001,default/two-00001"

	asArgs := func(addr string) []string {
		return []string{"autoscaler", "-addr", addr, "-lock-dir", lockDir, "-agent", agentURL, "-revisions", revs, "-cc", cc,
			"-config", "allow-zero-initial-scale=true", "-config", "initial-scale=0",
			"-config", "stable-window=6s", "-config", "target-burst-capacity=0",
			"-always-proxy", "default/two-00001"}
	}
	autoscalers := map[string]*proc{
		"http://" + as1Addr + "/stats/forwarded": start(t, "autoscaler-1", asArgs(as1Addr)...),
		"http://" + as2Addr + "/stats/forwarded": start(t, "autoscaler-2", asArgs(as2Addr)...),
	}
	// Replicas and activators push to the first autoscaler that answers:
	// list the one that does not own the revisions first, so every stat
	// and poke reaches the owner only by being forwarded.
	var firstOwner struct{ Owner string }
	eventually(t, 5*time.Second, "one autoscaler owns the revisions", func() bool {
		return getJSON(t, "http://"+as1Addr+"/owner?revision=default/one-00001", &firstOwner) == nil && firstOwner.Owner != ""
	})
	statsURLs := "http://" + as1Addr + "/stats,http://" + as2Addr + "/stats"
	if strings.Contains(firstOwner.Owner, as1Addr) {
		statsURLs = "http://" + as2Addr + "/stats,http://" + as1Addr + "/stats"
	}
	agent := start(t, "agent", "agent", "-addr", agentAddr, "-stats", statsURLs, "-cc", cc, "-work", work)
	require.Equal(t, agentAddr, agent.addrs["addr"])
	gwArgs := func(act string) []string {
		return []string{"gateway", "-activator-addr", act, "-activators", act1 + "," + act2, "-agent", agentURL,
			"-stats", statsURLs, "-services", "one=default/one-00001,two=default/two-00001", "-cc", cc}
	}
	gwA, gwB := start(t, "gateway-a", gwArgs(act1)...), start(t, "gateway-b", gwArgs(act2)...)
	gateways := []string{gwA.addrs["addr"], gwB.addrs["addr"]}
	httpc := &http.Client{Timeout: 30 * time.Second}

	// Scale from zero through either gateway.
	for i, svc := range []string{"one", "two"} {
		rev := "default/" + svc + "-00001"
		require.Equal(t, 0, replicaCount(t, agentURL, rev).Wanted, "%s starts at zero", rev)
		c := &client{gateways: gateways[i : i+1], host: svc + ".default.example.com", http: httpc}
		began := time.Now()
		require.True(t, c.do(), "first request to %s through gateway %d: %s", svc, i, c.errors())
		t.Logf("%s: scaled from zero through gateway %d in %v", svc, i, time.Since(began).Round(time.Millisecond))
		assert.GreaterOrEqual(t, replicaCount(t, agentURL, rev).Ready, 1)
	}

	// Steady load through both gateways: "one" goes to Serve mode on the
	// owner's decisions (target-burst-capacity 0), "two" keeps the
	// activators in its path (-1).
	one := &client{gateways: gateways, host: "one.default.example.com", http: httpc}
	two := &client{gateways: gateways, host: "two.default.example.com", http: httpc}
	clients := []*client{one, two}
	const rev = "default/one-00001"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	one.load(14, stop, &wg) // two replicas' worth
	two.load(14, stop, &wg)
	eventually(t, 30*time.Second, "scaled to 2 under load", func() bool {
		return replicaCount(t, agentURL, rev).Ready >= 2 && replicaCount(t, agentURL, "default/two-00001").Ready >= 2
	})
	failed := func() (n int64) {
		for _, c := range clients {
			n += c.failedAttempts.Load()
		}
		return n
	}
	errs := func() string { return one.errors() + "\n" + two.errors() }

	// Kill the autoscaler that owns the revisions (one bucket: it owns both).
	var owner struct{ Owner string }
	require.NoError(t, getJSON(t, "http://"+as1Addr+"/owner?revision="+rev, &owner))
	require.Equal(t, firstOwner.Owner, owner.Owner, "ownership stayed put while both lived")
	victim := autoscalers[owner.Owner]
	require.NotNil(t, victim, "owner %q is one of the autoscalers", owner.Owner)
	survivor := as1Addr
	if strings.Contains(owner.Owner, as1Addr) {
		survivor = as2Addr
	}
	before := failed()
	readyAtKill := replicaCount(t, agentURL, rev).Ready
	callsAtKill := len(scales(t, agentURL, rev))
	victim.kill(t)
	killed := time.Now()
	took := eventually(t, 5*time.Second, "the survivor owns the revision", func() bool {
		var o struct{ Owner, Self string }
		return getJSON(t, "http://"+survivor+"/owner?revision="+rev, &o) == nil && o.Owner == o.Self
	})
	t.Logf("take-over %v after the owner was killed", took.Round(time.Millisecond))
	// More load: the new owner scales up.
	wanted := replicaCount(t, agentURL, rev).Wanted
	one.load(21, stop, &wg) // five replicas' worth in all
	eventually(t, 10*time.Second, "the new owner scaled up", func() bool { return replicaCount(t, agentURL, rev).Wanted > wanted })
	t.Logf("scaled up from %d by the new owner %v after the kill", wanted, time.Since(killed).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	assert.Equal(t, before, failed(), "no request failed while the owning autoscaler died:\n%s", errs())
	// Within the stable window (6 s) of the take-over, its windows still
	// refilling, the new owner never asked for fewer replicas than were
	// ready (knative/serving#4795).
	after := scales(t, agentURL, rev)[callsAtKill:]
	t.Logf("scale calls after the kill: %v (%d ready at the kill)", after, readyAtKill)
	require.NotEmpty(t, after)
	for _, n := range after {
		assert.GreaterOrEqual(t, n, readyAtKill, "no scale-down while the new owner's windows refill: %v", after)
	}

	// Kill gateway A (and its activator): clients retry on B.
	viaB := func() (n int64) {
		for _, c := range clients {
			n += c.failedThrough(gwB.addrs["addr"])
		}
		return n
	}
	failedViaB := viaB()
	gwA.kill(t)
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	// Through B, only requests that B's activator path had already sent to
	// activator A can fail (502: they may have had effects); every later
	// one skips the dead activator. They are at most two's workers.
	t.Logf("failed through gateway B after gateway A died: %d", viaB()-failedViaB)
	assert.LessOrEqual(t, viaB()-failedViaB, int64(14), "gateway B left the dead activator out:\n%s", errs())
	for _, c := range clients {
		t.Logf("%s: %d ok (%d of them in Serve mode, from a gateway's balancer), %d failed attempts (retried), %d lost",
			c.host, c.ok.Load(), c.served.Load(), c.failedAttempts.Load(), c.lost.Load())
		assert.Zero(t, c.lost.Load(), "no request lost when a gateway died:\n%s", c.errors())
		assert.Greater(t, c.ok.Load(), int64(300), "enough requests to mean something")
	}
	assert.Greater(t, one.served.Load(), int64(0), "one switched to Serve mode on the owner's decisions")
	assert.Zero(t, two.served.Load(), "two kept the activators in its path")
}
