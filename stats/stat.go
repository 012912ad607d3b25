package stats

import (
	"fmt"
	"math"
	"time"
)

// Stat is the load one source observed for one revision over one reporting
// period. Proxied values are the part of the totals that came through the
// activator; they are included in Concurrency and RPS.
type Stat struct {
	// Source names who reported the stat: a replica (pod) name, or an
	// activator's name.
	Source string `json:"source"`
	// Concurrency is the time-weighted average number of requests in flight
	// over the period, proxied ones included.
	Concurrency float64 `json:"concurrency"`
	// ProxiedConcurrency is the part of Concurrency that came through the
	// activator.
	ProxiedConcurrency float64 `json:"proxiedConcurrency"`
	// RPS is requests per second that arrived during the period, proxied ones
	// included.
	RPS float64 `json:"rps"`
	// ProxiedRPS is the part of RPS that came through the activator.
	ProxiedRPS float64 `json:"proxiedRps"`
	// Uptime is how long the reporting process has been running.
	Uptime time.Duration `json:"uptime"`
	// Time is when the stat was produced. The zero time means "unknown"; a
	// receiver may substitute the time of receipt.
	Time time.Time `json:"time"`
}

// Validate reports whether every number in s is finite and not negative. It
// names each bad field and its value.
func (s Stat) Validate() error {
	var bad []string
	check := func(name string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad = append(bad, fmt.Sprintf("%s = %v, must be finite and >= 0", name, v))
		}
	}
	check("concurrency", s.Concurrency)
	check("proxiedConcurrency", s.ProxiedConcurrency)
	check("rps", s.RPS)
	check("proxiedRps", s.ProxiedRPS)
	if s.Uptime < 0 {
		bad = append(bad, fmt.Sprintf("uptime = %v, must be >= 0", s.Uptime))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("stats: invalid stat from %q: %s", s.Source, joinSemi(bad))
}

func joinSemi(parts []string) string {
	out := parts[0]
	for _, p := range parts[1:] {
		out += "; " + p
	}
	return out
}

// Message is a Stat together with the revision it is about. A batch of
// messages is what a reporter sends and what the wire format carries.
type Message struct {
	// Revision is the host's key for the revision (for example
	// "namespace/name").
	Revision string `json:"revision"`
	Stat     Stat   `json:"stat"`
}
