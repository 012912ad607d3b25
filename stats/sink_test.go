package stats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHTTPSinkToHandler(t *testing.T) {
	var got []Message
	srv := httptest.NewServer(Handler(func(_ context.Context, msgs []Message) error {
		got = msgs
		return nil
	}))
	defer srv.Close()

	sink := &HTTPSink{URL: srv.URL, Client: srv.Client()}
	require.NoError(t, sink.Send(context.Background(), sampleBatch()))
	require.Len(t, got, 2)
	assert.Equal(t, "default/hello-00001", got[0].Revision)
	assert.Equal(t, 3.5, got[0].Stat.Concurrency)
}

func TestHandlerRejects(t *testing.T) {
	h := Handler(func(_ context.Context, msgs []Message) error {
		if len(msgs) > 0 && msgs[0].Revision == "fail" {
			return errors.New("collector is gone")
		}
		return nil
	})
	tests := []struct {
		name, method, ctype, body string
		wantCode                  int
		wantBody                  string
	}{
		{"get", http.MethodGet, ContentType, "", http.StatusMethodNotAllowed, "only POST"},
		{"text", http.MethodPost, "text/plain", "hi", http.StatusUnsupportedMediaType, `"text/plain" not supported`},
		{"garbage", http.MethodPost, ContentType, "garbage", http.StatusBadRequest, "bad magic"},
		{"bad json", http.MethodPost, "application/json", "{", http.StatusBadRequest, "bad JSON"},
		{"negative json", http.MethodPost, "application/json", `[{"revision":"r","stat":{"rps":-1}}]`, http.StatusBadRequest, "rps = -1"},
		{"json ok", http.MethodPost, "application/json", `[{"revision":"r","stat":{"rps":1}}]`, http.StatusNoContent, ""},
		{"receiver fails", http.MethodPost, "application/json", `[{"revision":"fail"}]`, http.StatusInternalServerError, "collector is gone"},
		{"too big", http.MethodPost, ContentType, strings.Repeat("x", MaxBatchBytes+1), http.StatusRequestEntityTooLarge, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/stats", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tt.wantCode, rec.Code)
			assert.Contains(t, rec.Body.String(), tt.wantBody)
		})
	}
}

func TestHTTPSinkReportsStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "autoscaler is restarting", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	err := (&HTTPSink{URL: srv.URL}).Send(context.Background(), sampleBatch())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503 Service Unavailable: autoscaler is restarting")
}

func TestWriteBatchAndFetch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteBatch(w, r, sampleBatch())
	}))
	defer srv.Close()

	msgs, err := Fetch(context.Background(), srv.Client(), srv.URL)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	assert.Equal(t, 120.0, msgs[0].Stat.RPS)

	// JSON for humans.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	bad := httptest.NewServer(http.NotFoundHandler())
	defer bad.Close()
	_, err = Fetch(context.Background(), nil, bad.URL)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "404")
}

// lateReader is a RoundTripper that answers at once and reads the request
// body only later, as the RoundTripper contract allows ("may do so in a
// separate goroutine even after RoundTrip returns") and as http.Transport
// does when the server answers before it has read the whole body.
type lateReader struct{ bodies []io.ReadCloser }

func (t *lateReader) RoundTrip(r *http.Request) (*http.Response, error) {
	t.bodies = append(t.bodies, r.Body)
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
}

// TestHTTPSinkBodyOutlivesSend: a batch's body is not reused by the next
// Send (or a WriteBatch) while the transport may still read it.
func TestHTTPSinkBodyOutlivesSend(t *testing.T) {
	rt := &lateReader{}
	sink := &HTTPSink{URL: "http://autoscaler.example/stats", Client: &http.Client{Transport: rt}}
	batch := func(i int) []Message {
		return []Message{{Revision: fmt.Sprintf("default/r-%05d", i), Stat: Stat{Source: "pod", RPS: float64(i)}}}
	}
	const n = 20
	for i := range n {
		require.NoError(t, sink.Send(context.Background(), batch(i)))
	}
	for i, body := range rt.bodies {
		b, err := io.ReadAll(body)
		require.NoError(t, err)
		got, err := Decode(b)
		require.NoError(t, err)
		assert.Equal(t, batch(i), got, "body %d", i)
	}
}
