//go:build race

// Package race tells tests whether the race detector is on: under it,
// sync.Pool drops objects at random, so allocation counts of pooled paths
// are not meaningful.
package race

// Enabled is true when the race detector is on.
const Enabled = true
