package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/stats"
)

// TestWrappedAppKeepsItsLimit: 10 requests of 100 ms arrive at once; the
// app never sees more than 4 at a time, and every request succeeds.
func TestWrappedAppKeepsItsLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		inApp, peak := 0, 0
		app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			inApp++
			peak = max(peak, inApp)
			mu.Unlock()
			newApp().ServeHTTP(w, r)
			mu.Lock()
			inApp--
			mu.Unlock()
		})
		h, _, _, err := wrap(app, "default/inprocess-00001", "test")
		require.NoError(t, err)
		var wg sync.WaitGroup
		codes := make([]int, 10)
		for i := range codes {
			wg.Go(func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/work?ms=100", nil))
				codes[i] = rec.Code
			})
		}
		wg.Wait()
		for _, c := range codes {
			assert.Equal(t, http.StatusOK, c)
		}
		assert.Equal(t, 4, peak)
	})
}

// TestStatsEndpoint: the admin handler reports the replica's load for an
// autoscaler to scrape.
func TestStatsEndpoint(t *testing.T) {
	h, rep, admin, err := wrap(newApp(), "default/inprocess-00001", "test")
	require.NoError(t, err)
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/work?ms=0", nil))
		require.Equal(t, http.StatusOK, rec.Code)
	}
	rep.ReportNow(context.Background())
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9091/stats", nil) // the admin handler answers IP addresses and localhost
	req.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	admin.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	var msgs []stats.Message
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &msgs))
	require.Len(t, msgs, 1)
	assert.Equal(t, "default/inprocess-00001", msgs[0].Revision)
	assert.Equal(t, "test", msgs[0].Stat.Source)
	assert.Greater(t, msgs[0].Stat.RPS, 0.0)
}
