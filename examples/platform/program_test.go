package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testProgramEnv makes this test binary, re-executed, behave as a user's
// program (see runTestProgram): the end-to-end tests serve it through the
// platform's command and args like any other program.
const testProgramEnv = "SERVINGKIT_TEST_PROGRAM"

// runTestProgram is a user program with one behaviour per mode:
//
//	serve  answers GET / with what a program sees (its env, Host,
//	       X-Forwarded-For, Forwarded, its stdin, the protocol, its
//	       working directory);
//	       ?sleep=ms first; logs each request; on SIGTERM logs it and,
//	       with IGNORE_TERM=1, keeps running
//	slow   like serve, but not ready for SLOW_MS: /healthz 503 and / 500
//	crash  prints a line to stderr and exits 3
//	never  never listens
//	fork   starts a child (mode sleep), writes its pid to PID_FILE, serves
//	sleep  sleeps
//	h2c    serves cleartext HTTP/2 only
func runTestProgram(mode string) int {
	port := os.Getenv("PORT")
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "boom: the program failed on purpose")
		return 3
	case "never", "sleep":
		time.Sleep(time.Hour)
		return 0
	case "fork":
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), testProgramEnv+"=sleep")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			return 1
		}
		if err := os.WriteFile(os.Getenv("PID_FILE"), []byte(strconv.Itoa(child.Process.Pid)), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "fork:", err)
			return 1
		}
	}
	readyAt := time.Now()
	if ms, err := strconv.Atoi(os.Getenv("SLOW_MS")); err == nil && mode == "slow" {
		readyAt = readyAt.Add(time.Duration(ms) * time.Millisecond)
	}
	stdin, _ := io.ReadAll(io.LimitReader(os.Stdin, 100))
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Now().Before(readyAt) {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if time.Now().Before(readyAt) {
			http.Error(w, "not ready yet", http.StatusInternalServerError)
			return
		}
		if ms, err := strconv.Atoi(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		fmt.Printf("request %s %s\n", r.Method, r.URL.Path)
		var names []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			names = append(names, k)
		}
		slices.Sort(names)
		cwd, _ := os.Getwd()
		fmt.Fprintf(w, "revision=%s service=%s configuration=%s target=%s host=%s xff=%s forwarded=%s stdin=%q proto=%s port=%s args=%q env=%q home=%q hostname=%q path=%q greeting=%q cwd=%q\n",
			os.Getenv("K_REVISION"), os.Getenv("K_SERVICE"), os.Getenv("K_CONFIGURATION"), os.Getenv("TARGET"),
			r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("Forwarded"), stdin, r.Proto, port, os.Args[1:],
			names, os.Getenv("HOME"), os.Getenv("HOSTNAME"), os.Getenv("PATH"), os.Getenv("GREETING"), cwd)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if mode == "h2c" {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = &p
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	fmt.Println("listening on", port)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		for range term {
			fmt.Println("got SIGTERM")
			if os.Getenv("IGNORE_TERM") != "1" {
				os.Exit(0)
			}
		}
	}()
	_ = srv.Serve(l)
	return 0
}

// A program's port is free and below the kernel's ephemeral range, so no
// socket bound to port 0 (a queue's) can take it before the program binds
// it; while held, connections to it are refused and no listener can take
// it; once released, the program can listen on it.
func TestHoldPortBelowEphemeralRange(t *testing.T) {
	lo, hi := programPorts()
	assert.GreaterOrEqual(t, hi-lo, 1000)
	seen := map[int]bool{}
	for range 20 {
		h, err := holdPort()
		require.NoError(t, err)
		p := h.port
		assert.True(t, p >= lo && p < hi, "port %d in [%d, %d)", p, lo, hi)
		seen[p] = true
		addr := "127.0.0.1:" + strconv.Itoa(p)
		_, err = net.Dial("tcp", addr)
		assert.ErrorIs(t, err, syscall.ECONNREFUSED, "held: refused")
		if l, err := net.Listen("tcp", addr); !assert.Error(t, err, "held: no listener takes it") {
			l.Close()
		}
		assert.Equal(t, p, h.release())
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err, "released: the program can listen")
		l.Close()
	}
	assert.Greater(t, len(seen), 10, "random over the range")
}
