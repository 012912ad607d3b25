// Command coldstart measures what the local platform adds to a cold start.
//
// It starts the platform (a built binary, -platform) with -n services at
// zero replicas, each running the same program (-program), and then, one
// run at a time and interleaved, measures:
//
//   - direct: the program's own start-up, without the platform: from just
//     before exec until its port accepts a connection and answers GET /
//     (dials every 100 µs until one connects, then one request on it);
//   - platform: the first request to one of the services at zero through
//     the gateway: from just before the client dials until the response
//     body is read. The activator's Server-Timing header gives the
//     breakdown (scale decision, replica ready, queued, forwarded).
//
// The platform's own share of a run is platform − direct of the same run.
// It prints every run, then p50 and p99 (nearest rank) of each figure and
// the load average before and after. Runs alternate which side goes first
// and start -gap apart.
//
// With -program builtin the services run the platform's built-in app
// (hello) and "direct" runs the same binary as a bare app
// (-bare-app hello), which is the same Go program without the platform.
//
//	go build -o /tmp/platform ./examples/platform
//	go build -o /tmp/greeter ./examples/platform/programs/greeter
//	go run ./examples/platform/loadtest/coldstart -platform /tmp/platform -program /tmp/greeter -n 40
package main

import (
	"bufio"
	"encoding/json"
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
	"syscall"
	"time"
)

func main() {
	platform := flag.String("platform", "", "the platform binary (go build ./examples/platform)")
	program := flag.String("program", "builtin", "the program binary each service runs (listens on $PORT, answers GET /), or builtin for the platform's built-in app")
	n := flag.Int("n", 40, "runs (one service at zero each)")
	probe := flag.String("probe", "http", "the program's readiness probe: http (GET /), tcp (the platform's default)")
	addr := flag.String("addr", "127.0.0.1:18180", "the platform's gateway address")
	control := flag.String("control", "127.0.0.1:18181", "the platform's control address")
	keep := flag.Bool("v", false, "pass the platform's log through to stderr")
	gap := flag.Duration("gap", time.Second, "pause before each run, so that the previous one's background work (the platform starting its next spare replica) is done")
	flag.Parse()
	if *platform == "" || *n < 1 || (*probe != "http" && *probe != "tcp") {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*platform, *program, *probe, *addr, *control, *n, *gap, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

func run(platform, program, probe, addr, control string, n int, gap time.Duration, verbose bool) error {
	dir, err := os.MkdirTemp("", "coldstart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	args := []string{"-quiet", "-addr", addr, "-control", control, "-internal", "", "-token-file", filepath.Join(dir, "token"),
		"-config", "allow-zero-initial-scale=true"}
	for i := 1; i <= n; i++ {
		f := filepath.Join(dir, fmt.Sprintf("cold%d.yaml", i))
		if err := os.WriteFile(f, []byte(manifest(i, program, probe)), 0o600); err != nil {
			return err
		}
		args = append(args, "-f", f)
	}
	plat := exec.Command(platform, args...)
	if verbose {
		plat.Stderr = os.Stderr
	}
	if err := plat.Start(); err != nil {
		return err
	}
	defer func() {
		_ = plat.Process.Signal(syscall.SIGTERM)
		_ = plat.Wait()
	}()
	if err := waitReady(control, n); err != nil {
		return err
	}
	load0 := loadavg()
	fmt.Printf("program %s, readiness probe %s, %d runs, load average %s\n", program, probe, n, load0)
	var direct, total, share []float64
	timings := map[string][]float64{}
	for i := 1; i <= n; i++ {
		time.Sleep(gap)
		var d, t float64
		var st string
		var derr, terr error
		platformRun := func() { t, st, terr = coldRequest(addr, fmt.Sprintf("cold%d.default.localhost", i)) }
		directRun := func() { d, derr = directStart(platform, program) }
		if i%2 == 1 {
			directRun()
			platformRun()
		} else {
			platformRun()
			directRun()
		}
		if derr != nil {
			return fmt.Errorf("run %d: direct: %w", i, derr)
		}
		if terr != nil {
			return fmt.Errorf("run %d: through the platform: %w", i, terr)
		}
		direct, total, share = append(direct, d), append(total, t), append(share, t-d)
		for name, v := range parseServerTiming(st) {
			timings[name] = append(timings[name], v)
		}
		fmt.Printf("run %2d: direct %6.1f ms  platform %6.1f ms  share %6.1f ms  %s\n", i, d, t, t-d, st)
	}
	fmt.Printf("load average before %s, after %s\n", load0, loadavg())
	fmt.Printf("%-28s %8s %8s %8s %8s\n", "ms", "min", "p50", "p99", "max")
	row := func(name string, v []float64) {
		if len(v) == 0 {
			return
		}
		s := slices.Sorted(slices.Values(v))
		fmt.Printf("%-28s %8.1f %8.1f %8.1f %8.1f\n", name, s[0], rank(s, 0.5), rank(s, 0.99), s[len(s)-1])
	}
	row("direct (program start-up)", direct)
	row("platform (first response)", total)
	row("platform share", share)
	for _, name := range []string{"scale", "ready", "queued", "forwarded"} {
		row("  server-timing "+name, timings[name])
	}
	return nil
}

// rank is the nearest-rank percentile of sorted s.
func rank(s []float64, p float64) float64 {
	i := int(float64(len(s))*p+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func manifest(i int, program, probe string) string {
	container := "{image: ghcr.io/knative/helloworld-go}"
	if program != "builtin" {
		abs, _ := filepath.Abs(program)
		rp := "tcpSocket: {}"
		if probe == "http" {
			rp = "httpGet: {path: /}"
		}
		container = fmt.Sprintf("{image: program, command: [%q], readinessProbe: {%s}}", abs, rp)
	}
	return fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: cold%d, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/initial-scale: "0"}
    spec:
      containers: [%s]
`, i, container)
}

// waitReady waits until the platform's n revisions are Ready (at zero).
func waitReady(control string, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		resp, err := http.Get("http://" + control + "/status")
		if err != nil {
			continue
		}
		var st struct {
			Revisions []struct {
				Ready bool `json:"ready"`
			} `json:"revisions"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		ready := 0
		for _, r := range st.Revisions {
			if r.Ready {
				ready++
			}
		}
		if err == nil && ready == n {
			time.Sleep(500 * time.Millisecond) // routed
			return nil
		}
	}
	return fmt.Errorf("the platform's %d revisions did not become ready within 60s", n)
}

// coldRequest sends one request on a new connection and returns the time
// to the end of the response body (ms) and its Server-Timing header. It
// dials and reads as directStart's request does (getOn), so that the two
// differ only in what answers.
func coldRequest(addr, host string) (float64, string, error) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ms := float64(time.Since(start).Microseconds()) / 1000
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: status %d", host, resp.StatusCode)
	}
	return ms, resp.Header.Get("Server-Timing"), err
}

// directStart starts the program on a free port and returns the time from
// exec until it answered GET / (ms); then it stops the program.
func directStart(platform, program string) (float64, error) {
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	hostport := "127.0.0.1:" + strconv.Itoa(port)
	var cmd *exec.Cmd
	if program == "builtin" {
		cmd = exec.Command(platform, "-bare-app", "hello", "-addr", hostport)
	} else {
		cmd = exec.Command(program)
	}
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "K_REVISION=direct")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := start.Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", hostport)
		if err == nil {
			ms, err := getOn(c, start)
			c.Close()
			return ms, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not listen on %s within 30s", program, hostport)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// getOn sends GET / on c and returns the time from start to the end of
// the response (ms).
func getOn(c net.Conn, start time.Time) (float64, error) {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: direct\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("direct: status %d", resp.StatusCode)
	}
	return float64(time.Since(start).Microseconds()) / 1000, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var metricRE = regexp.MustCompile(`([a-z]+);dur=([0-9.]+)`)

// parseServerTiming returns each metric's duration (ms).
func parseServerTiming(h string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range metricRE.FindAllStringSubmatch(h, -1) {
		if v, err := strconv.ParseFloat(m[2], 64); err == nil {
			out[m[1]] = v
		}
	}
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
