// Package bench holds benchmarks that run servingkit and Knative Serving
// (knative.dev/serving v0.42.2) side by side in one process, so that the
// ratios in BENCHMARKS.md are measured in one run on one machine. It is a
// separate module so that the core module never depends on Knative, and it
// is not part of CI.
//
//	cd bench && go test -run '^$' -bench . -benchmem
package bench
