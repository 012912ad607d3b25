package stats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
)

// Sink receives batches of stats, for example to push them to an
// autoscaler. Send is called from one goroutine at a time by a Reporter.
type Sink interface {
	Send(ctx context.Context, msgs []Message) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, msgs []Message) error

// Send calls f(ctx, msgs).
func (f SinkFunc) Send(ctx context.Context, msgs []Message) error { return f(ctx, msgs) }

// MaxBatchBytes is the largest encoded batch Handler and Fetch accept.
const MaxBatchBytes = 4 << 20

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// HTTPSink pushes each batch to URL with a POST in the binary encoding.
type HTTPSink struct {
	// URL is where batches are posted, for example the URL of an autoscaler
	// serving Handler.
	URL string
	// Client sends the requests; nil means http.DefaultClient. Give it a
	// timeout, or pass a context with a deadline to Send.
	Client *http.Client
}

// Send posts msgs to s.URL. A response other than 2xx is an error that
// carries the status and the start of the body.
func (s *HTTPSink) Send(ctx context.Context, msgs []Message) error {
	// A fresh buffer, not a pooled one: the transport may still read the
	// body after Do returns (http.RoundTripper's contract), so it must not
	// be handed to the next Send. One allocation per period is nothing.
	body := AppendEncode(nil, msgs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("stats: push to %s: %w", s.URL, err)
	}
	req.Header.Set("Content-Type", ContentType)
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("stats: push to %s: %w", s.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("stats: push to %s: %s: %s", s.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	return nil
}

// Handler returns an http.Handler that accepts batches POSTed by HTTPSink
// (or as a JSON array of Message) and passes them to receive. It answers
// 204 on success, 405 for another method, 415 for another content type,
// 413 for a body over MaxBatchBytes, 400 for a malformed batch and 500 with
// the error's text when receive fails.
func Handler(receive func(ctx context.Context, msgs []Message) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "stats: only POST is allowed", http.StatusMethodNotAllowed)
			return
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != ContentType && mt != "application/json" {
			http.Error(w, fmt.Sprintf("stats: content type %q not supported, want %q or application/json", mt, ContentType), http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBatchBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("stats: batch larger than %d bytes", MaxBatchBytes), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "stats: reading batch: "+err.Error(), http.StatusBadRequest)
			return
		}
		msgs, err := decodeAs(mt, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := receive(r.Context(), msgs); err != nil {
			http.Error(w, "stats: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func decodeAs(mediaType string, body []byte) ([]Message, error) {
	if mediaType != "application/json" {
		return Decode(body)
	}
	var msgs []Message
	if err := json.Unmarshal(body, &msgs); err != nil {
		return nil, fmt.Errorf("stats: bad JSON batch: %w", err)
	}
	for i := range msgs {
		if err := msgs[i].Stat.Validate(); err != nil {
			return nil, fmt.Errorf("stats: message %d: %w", i, err)
		}
	}
	return msgs, nil
}

// WriteBatch answers a scrape with msgs: JSON when the request's Accept
// header asks for application/json (handy with curl), the binary encoding
// otherwise.
func WriteBatch(w http.ResponseWriter, r *http.Request, msgs []Message) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		if msgs == nil {
			msgs = []Message{}
		}
		_ = json.NewEncoder(w).Encode(msgs)
		return
	}
	bp := bufPool.Get().(*[]byte)
	*bp = AppendEncode((*bp)[:0], msgs)
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write(*bp)
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}

// Fetch scrapes url, an endpoint that answers with WriteBatch, and decodes
// the batch. A non-2xx status, a body over MaxBatchBytes or a malformed
// batch is an error naming the URL.
func Fetch(ctx context.Context, c *http.Client, url string) ([]Message, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("stats: scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", ContentType)
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stats: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, fmt.Errorf("stats: scrape %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBatchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("stats: scrape %s: %w", url, err)
	}
	if len(body) > MaxBatchBytes {
		return nil, fmt.Errorf("stats: scrape %s: body larger than %d bytes", url, MaxBatchBytes)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	msgs, err := decodeAs(mt, body)
	if err != nil {
		return nil, fmt.Errorf("stats: scrape %s: %w", url, err)
	}
	return msgs, nil
}
