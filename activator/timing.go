package activator

import (
	"strconv"
	"time"
)

// Timing breaks down the time of one request that waited for capacity, for
// Options.ServerTiming. Durations run from the request's arrival at the
// activator unless said otherwise.
type Timing struct {
	// Revision is the revision the request was for.
	Revision string
	// Arrived is when the activator got the request (its clock), so that a
	// host can place its own events, such as the autoscaler's decision to
	// scale up, on the same line.
	Arrived time.Time
	// Cold is true when no replica of the revision was ready for this
	// activator when the request arrived.
	Cold bool
	// Ready, for a cold request, is when a replica became ready for this
	// activator (listed by the host and, with a Prober, probed); 0 for a
	// request that waited behind busy replicas.
	Ready time.Duration
	// Queued is how long the request waited in line for capacity, from
	// joining the line (just after arrival) until it got a replica; after
	// a failed connection, its waits added up.
	Queued time.Duration
	// Forwarded runs from getting the replica to the replica's response
	// header: the replica's own time plus the hop. 0 when TurnedAway.
	Forwarded time.Duration
	// TurnedAway is true for a request that waited and was then answered
	// by the activator itself, not forwarded: its deadline or MaxWait
	// passed, the line was full, or its revision was removed (Outcome
	// says which). ServerTiming leaves forwarded out then.
	TurnedAway bool
	// Outcome is how the request ended: OutcomeServed when forwarded.
	Outcome Outcome
}

// ServerTiming formats t as a Server-Timing header value (W3C Server
// Timing), in milliseconds:
//
//	ready;dur=52.1;desc="replica ready", queued;dur=52.3;desc="queued", forwarded;dur=1.2;desc="forwarded"
//
// ready is left out for a request that was not cold, forwarded for one
// that was turned away. As a method
// expression, Timing.ServerTiming is the Options.ServerTiming of a host
// that adds nothing of its own.
func (t Timing) ServerTiming() string {
	return string(t.AppendServerTiming(nil))
}

// AppendServerTiming appends ServerTiming's value to dst; a host that adds
// metrics of its own appends ", " and them.
func (t Timing) AppendServerTiming(dst []byte) []byte {
	if t.Cold && t.Ready > 0 {
		dst = AppendServerTimingMetric(dst, "ready", t.Ready, "replica ready")
		dst = append(dst, ", "...)
	}
	dst = AppendServerTimingMetric(dst, "queued", t.Queued, "queued")
	if t.TurnedAway {
		return dst
	}
	dst = append(dst, ", "...)
	return AppendServerTimingMetric(dst, "forwarded", t.Forwarded, "forwarded")
}

// AppendServerTimingMetric appends one Server-Timing metric,
// name;dur=<milliseconds>;desc="<desc>", to dst. name must be a token and
// desc must not contain a double quote or a backslash.
func AppendServerTimingMetric(dst []byte, name string, d time.Duration, desc string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ";dur="...)
	dst = strconv.AppendFloat(dst, float64(d)/float64(time.Millisecond), 'f', 1, 64)
	if desc != "" {
		dst = append(dst, `;desc="`...)
		dst = append(dst, desc...)
		dst = append(dst, '"')
	}
	return dst
}
