package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/servingkit/servingkit/autoscaler"
)

// The adapter satisfies both plug points of the runner.
var (
	_ autoscaler.Scaler       = (*groupScaler)(nil)
	_ autoscaler.ReadyCounter = (*groupScaler)(nil)
)

func TestAdapterAgainstTheAPI(t *testing.T) {
	api := newFakeAPI(0)
	srv := httptest.NewServer(api)
	defer srv.Close()
	g := &groupScaler{base: srv.URL, client: srv.Client()}
	ctx := context.Background()

	n, err := g.ReadyCount("default/a")
	require.NoError(t, err)
	assert.Zero(t, n, "a group that does not exist has no instance")

	err = g.Scale(ctx, "default/a", 3)
	assert.ErrorContains(t, err, "503", "the API's first resize fails")
	require.NoError(t, g.Scale(ctx, "default/a", 3), "and the retry succeeds")
	n, err = g.ReadyCount("default/a")
	require.NoError(t, err)
	assert.Equal(t, 3, n)

	require.NoError(t, g.Scale(ctx, "default/a", 0))
	n, _ = g.ReadyCount("default/a")
	assert.Zero(t, n)
	assert.Equal(t, []string{"3 (failed)", "3", "0"}, api.calls())

	bad := &groupScaler{base: srv.URL + "/nope", client: &http.Client{Timeout: time.Second}}
	assert.Error(t, bad.Scale(ctx, "x", -1))
}
