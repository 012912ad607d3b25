package main

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// helloApp is Knative's helloworld-go sample in spirit: it greets $TARGET.
func helloApp(env map[string]string) http.Handler {
	target := env["TARGET"]
	if target == "" {
		target = "World"
	}
	msg := "Hello " + target + "!\n"
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(msg))
	})
}

// autoscaleApp is Knative's autoscale-go sample in spirit: each request
// sleeps ?sleep= milliseconds and/or finds the largest prime below ?prime=.
// SLEEP_MS and PRIME in the environment set the defaults.
func autoscaleApp(env map[string]string) http.Handler {
	defSleep, _ := strconv.Atoi(env["SLEEP_MS"])
	defPrime, _ := strconv.Atoi(env["PRIME"])
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sleep, prime := defSleep, defPrime
		if v := r.URL.Query().Get("sleep"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 600_000 {
				http.Error(w, fmt.Sprintf("sleep=%q: want milliseconds in [0, 600000]", v), http.StatusBadRequest)
				return
			}
			sleep = n
		}
		if v := r.URL.Query().Get("prime"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 100_000_000 {
				http.Error(w, fmt.Sprintf("prime=%q: want an integer in [0, 100000000]", v), http.StatusBadRequest)
				return
			}
			prime = n
		}
		var parts string
		if sleep > 0 {
			t := time.NewTimer(time.Duration(sleep) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
			parts += fmt.Sprintf("Slept for %d ms. ", sleep)
		}
		if prime > 0 {
			parts += fmt.Sprintf("The largest prime less than %d is %d. ", prime, largestPrimeBelow(prime))
		}
		if parts == "" {
			parts = "Nothing to do (try ?sleep=100&prime=10000). "
		}
		if t := env["TARGET"]; t != "" {
			parts = t + ": " + parts
		}
		_, _ = fmt.Fprintln(w, parts[:len(parts)-1])
	})
}

// largestPrimeBelow burns CPU on purpose: trial division.
func largestPrimeBelow(n int) int {
	for c := n - 1; c >= 2; c-- {
		if isPrime(c) {
			return c
		}
	}
	return 0
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	lim := int(math.Sqrt(float64(n)))
	for d := 2; d <= lim; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func appHandler(app App, env map[string]string) http.Handler {
	if app == AppAutoscale {
		return autoscaleApp(env)
	}
	return helloApp(env)
}
