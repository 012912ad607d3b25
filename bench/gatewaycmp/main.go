// Command gatewaycmp measures one proxy hop in front of the same demo app,
// interleaved in one run: the bare app, a stock httputil.ReverseProxy hop
// (the platform's -bare-proxy), an nginx hop (one worker, keep-alive
// upstream), and the gateway's Serve path (ServeHandler) and Proxy path
// (remote Activators, the app standing in for the activator) over
// proxy.Forwarder, with their default forwarding (HTTP/1 through
// proxy.Client). Each hop is its own process. For each it prints
// saturation throughput (wrk -t1 -c32), the CPU the hop's process spent
// per request at saturation (from /proc/<pid>/stat; the app's CPU is not
// counted, except for the bare app's own row), and p50/p99 latency at a
// fixed rate (an open-loop generator in this process, latencies counted
// from each request's scheduled time), each also as a ratio to nginx.
//
//	cd bench && go run ./gatewaycmp            # builds ../examples/platform
//	cd bench && go run ./gatewaycmp -rounds 5 -duration 10s -rate 2000
//
// nginx and wrk come from Debian packages (apt-get install nginx-light
// wrk); without nginx its row is skipped with a message and ratios are to
// the stock ReverseProxy instead; without wrk the command stops.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/servingkit/servingkit/balancer"
	"github.com/servingkit/servingkit/gateway"
)

func main() {
	mode := flag.String("serve-mode", "", "internal: run a gateway hop (serve or proxy) to -target on -addr")
	target := flag.String("target", "", "internal: the app's host:port")
	addr := flag.String("addr", "", "internal: listen address")
	platform := flag.String("platform", "", "the examples/platform binary (default: built from ../examples/platform)")
	rounds := flag.Int("rounds", 3, "interleaved rounds")
	duration := flag.Duration("duration", 5*time.Second, "each saturation and each fixed-rate run")
	rate := flag.Int("rate", 1000, "requests per second of the fixed-rate run")
	conns := flag.Int("conns", 32, "wrk connections")
	flag.Parse()
	if *mode != "" {
		if err := serveHop(*mode, *target, *addr); err != nil {
			fmt.Fprintln(os.Stderr, "gatewaycmp:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*platform, *rounds, *duration, *rate, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaycmp:", err)
		os.Exit(1)
	}
}

// serveHop is the child process of a gateway row.
func serveHop(mode, target, addr string) error {
	var h http.Handler
	switch mode {
	case "serve":
		b, err := balancer.New(balancer.Config{})
		if err != nil {
			return err
		}
		if err := b.SetReplicas([]string{target}); err != nil {
			return err
		}
		if h, err = gateway.NewServeHandler(b, nil); err != nil {
			return err
		}
	case "proxy":
		acts, err := gateway.NewActivators(gateway.ActivatorsConfig{})
		if err != nil {
			return err
		}
		ra := acts.For("default/hello")
		ra.SetAddresses([]string{target})
		h = ra
	default:
		return fmt.Errorf("-serve-mode %q: want serve or proxy", mode)
	}
	s := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 30 * time.Second}
	return s.ListenAndServe()
}

type hop struct {
	name string
	url  string
	pid  int // the process whose CPU counts
}

type result struct {
	rps, cpuMicros float64
	p50, p99       time.Duration
}

func run(platform string, rounds int, duration time.Duration, rate, conns int) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: apt-get install wrk")
	}
	dir, err := os.MkdirTemp("", "gatewaycmp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if platform == "" {
		platform = filepath.Join(dir, "platform")
		fmt.Println("building ../examples/platform ...")
		cmd := exec.Command("go", "build", "-o", platform, ".")
		cmd.Dir = filepath.Join("..", "examples", "platform")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building the platform: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	start := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.Command(name, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, cmd)
		return cmd, nil
	}
	appAddr := freeAddr()
	app, err := start(platform, "-bare-app", "hello", "-addr", appAddr, "-quiet")
	if err != nil {
		return err
	}
	hops := []hop{{name: "bare app", url: "http://" + appAddr + "/", pid: app.Process.Pid}}

	stockAddr := freeAddr()
	stock, err := start(platform, "-bare-proxy", appAddr, "-addr", stockAddr, "-quiet")
	if err != nil {
		return err
	}
	hops = append(hops, hop{name: "stock ReverseProxy", url: "http://" + stockAddr + "/", pid: stock.Process.Pid})

	if nginx, err := exec.LookPath("nginx"); err != nil {
		fmt.Println("nginx not found (apt-get install nginx-light): its row is skipped, ratios are to the stock ReverseProxy")
	} else {
		nginxAddr := freeAddr()
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(dir, appAddr, nginxAddr)), 0o600); err != nil {
			return err
		}
		ng, err := start(nginx, "-c", conf, "-p", dir, "-e", "stderr")
		if err != nil {
			fmt.Println("nginx did not start:", err, "- its row is skipped")
		} else {
			hops = append(hops, hop{name: "nginx (1 worker)", url: "http://" + nginxAddr + "/", pid: ng.Process.Pid})
		}
	}
	for _, mode := range []string{"serve", "proxy"} {
		a := freeAddr()
		g, err := start(self, "-serve-mode", mode, "-target", appAddr, "-addr", a)
		if err != nil {
			return err
		}
		hops = append(hops, hop{name: "gateway " + mode, url: "http://" + a + "/", pid: g.Process.Pid})
	}
	for _, h := range hops {
		if err := waitUp(h.url); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
	}

	fmt.Printf("conditions: %d cores, load average %s; wrk -t1 -c%d -d%v; fixed rate %d/s for %v; %d interleaved rounds\n",
		numCPU(), loadavg(), conns, duration, rate, duration, rounds)
	results := make([][]result, len(hops))
	for round := range rounds {
		for i, h := range hops {
			r, err := measure(h, duration, rate, conns)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, h.name, err)
			}
			results[i] = append(results[i], r)
			fmt.Printf("round %d  %-20s %9.0f req/s  %7.1f µs CPU/req  p50 %8v  p99 %8v\n", round+1, h.name, r.rps, r.cpuMicros, r.p50, r.p99)
		}
	}
	fmt.Printf("load average at the end %s\n\n", loadavg())

	base := slices.IndexFunc(hops, func(h hop) bool { return strings.HasPrefix(h.name, "nginx") })
	if base < 0 {
		base = 1
	}
	fmt.Printf("medians over %d rounds; ratios to %s\n", rounds, hops[base].name)
	fmt.Printf("%-20s %10s %7s %12s %7s %10s %7s %10s %7s\n", "hop", "req/s", "×", "CPU µs/req", "×", "p50", "×", "p99", "×")
	med := make([]result, len(hops))
	for i := range hops {
		med[i] = median(results[i])
	}
	b := med[base]
	for i, h := range hops {
		m := med[i]
		fmt.Printf("%-20s %10.0f %7.2f %12.1f %7.2f %10v %7.2f %10v %7.2f\n", h.name,
			m.rps, m.rps/b.rps, m.cpuMicros, m.cpuMicros/b.cpuMicros,
			m.p50.Round(time.Microsecond), float64(m.p50)/float64(b.p50), m.p99.Round(time.Microsecond), float64(m.p99)/float64(b.p99))
	}
	fmt.Println("\nCPU/req is the hop's own process (the app behind it is not counted); the bare app's row is the app alone.")
	return nil
}

func nginxConf(dir, app, listen string) string {
	return fmt.Sprintf(`worker_processes 1;
master_process off;
daemon off;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream app { server %[2]s; keepalive 64; }
	server {
		listen %[3]s;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
		}
	}
}
`, dir, app, listen)
}

// measure runs wrk at saturation (throughput, CPU per request) and then
// the fixed-rate run (latency).
func measure(h hop, duration time.Duration, rate, conns int) (result, error) {
	var r result
	cpu0, err := cpuTicks(h.pid)
	if err != nil {
		return r, err
	}
	out, err := exec.Command("wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(duration.Seconds())), h.url).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("wrk: %v: %s", err, out)
	}
	cpu1, err := cpuTicks(h.pid)
	if err != nil {
		return r, err
	}
	n, rps, err := parseWrk(string(out))
	if err != nil {
		return r, err
	}
	r.rps = rps
	r.cpuMicros = float64(cpu1-cpu0) / clockTicks * 1e6 / float64(n)
	r.p50, r.p99, err = fixedRate(h.url, rate, duration)
	return r, err
}

var (
	wrkTotal = regexp.MustCompile(`(\d+) requests in`)
	wrkRate  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkNon2  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func parseWrk(out string) (int, float64, error) {
	t := wrkTotal.FindStringSubmatch(out)
	rs := wrkRate.FindStringSubmatch(out)
	if t == nil || rs == nil {
		return 0, 0, fmt.Errorf("cannot read wrk's output: %s", out)
	}
	if bad := wrkNon2.FindStringSubmatch(out); bad != nil {
		return 0, 0, fmt.Errorf("%s non-2xx responses: %s", bad[1], out)
	}
	n, _ := strconv.Atoi(t[1])
	rps, _ := strconv.ParseFloat(rs[1], 64)
	if n == 0 {
		return 0, 0, fmt.Errorf("no request completed: %s", out)
	}
	return n, rps, nil
}

// fixedRate sends rate requests a second for d, each at its scheduled
// time whatever the earlier ones do (open loop), and returns the p50 and
// p99 of the latencies from the scheduled times.
func fixedRate(url string, rate int, d time.Duration) (time.Duration, time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var failed error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			lat[i] = time.Since(at)
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return 0, 0, failed
	}
	slices.Sort(lat)
	return lat[n/2], lat[n*99/100], nil
}

func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return result{
		rps:       pick(func(r result) float64 { return r.rps }),
		cpuMicros: pick(func(r result) float64 { return r.cpuMicros }),
		p50:       time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99:       time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
	}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// Linux for every architecture Go supports.
const clockTicks = 100

// cpuTicks returns utime+stime of pid (all its threads).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold
	// spaces.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + st, nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not up: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func numCPU() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "processor") {
			n++
		}
	}
	return n
}
