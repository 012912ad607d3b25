package kubernetes

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/servingkit/servingkit/stats"
)

// forwardQueue bounds the stats a non-holder keeps for the Lease holder
// between pushes; past it the oldest are replaced by newer ones and the
// loss is logged (the next periodic report carries the load again).
const forwardQueue = 4096

// forwarder pushes the stats and pokes of a process that does not hold the
// Lease to the one that does, as one batch as soon as any is queued.
type forwarder struct {
	log    *slog.Logger
	client *http.Client
	wake   chan struct{} // capacity 1

	mu      sync.Mutex // protects pending, dropped
	pending []stats.Message
	dropped int
}

func newForwarder(token string, log *slog.Logger) *forwarder {
	return &forwarder{
		log:  log,
		wake: make(chan struct{}, 1),
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &tokenTransport{token: "Bearer " + token, next: http.DefaultTransport},
		},
	}
}

func (f *forwarder) enqueue(m stats.Message) {
	f.mu.Lock()
	if len(f.pending) >= forwardQueue {
		f.pending = f.pending[1:]
		f.dropped++
	}
	f.pending = append(f.pending, m)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run pushes queued stats to url() until ctx ends. With no holder known
// (url() == "") or a failed push, the batch is kept and tried again on the
// next wake or after a second.
func (f *forwarder) run(ctx context.Context, url func() string) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-retry.C:
		}
		f.mu.Lock()
		batch, dropped := f.pending, f.dropped
		f.pending, f.dropped = nil, 0
		f.mu.Unlock()
		if dropped > 0 {
			f.log.Warn("stats for the autoscaler lease holder dropped: queue full", "dropped", dropped)
		}
		if len(batch) == 0 {
			continue
		}
		u := url()
		var err error
		if u != "" {
			sink := stats.HTTPSink{URL: u, Client: f.client}
			err = sink.Send(ctx, batch)
		}
		if u == "" || err != nil {
			if err != nil {
				f.log.Warn("stats push to the autoscaler lease holder", "error", err)
			}
			f.mu.Lock()
			f.pending = append(batch, f.pending...)
			if over := len(f.pending) - forwardQueue; over > 0 {
				f.pending = f.pending[over:]
				f.dropped += over
			}
			f.mu.Unlock()
		}
	}
}

// tokenTransport adds the peer token to every request.
type tokenTransport struct {
	token string
	next  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(PeerTokenHeader, t.token)
	return t.next.RoundTrip(r)
}
