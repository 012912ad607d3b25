package bench

import (
	"context"
	"testing"

	knqueue "knative.dev/serving/pkg/queue"

	"github.com/servingkit/servingkit/queue"
)

// Breaker acquire/release at capacity 1000, the setting Knative's own
// breaker benchmark uses.

func BenchmarkBreaker(b *testing.B) {
	ctx := context.Background()
	noop := func() {}
	b.Run("servingkit/sequential", func(b *testing.B) {
		br, err := queue.NewBreaker(queue.BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = br.Do(ctx, noop)
		}
	})
	b.Run("knative/sequential", func(b *testing.B) {
		br := knqueue.NewBreaker(knqueue.BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
		b.ReportAllocs()
		for b.Loop() {
			_ = br.Maybe(ctx, noop)
		}
	})
	b.Run("servingkit/parallel", func(b *testing.B) {
		br, err := queue.NewBreaker(queue.BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Do(ctx, noop)
			}
		})
	})
	b.Run("knative/parallel", func(b *testing.B) {
		br := knqueue.NewBreaker(knqueue.BreakerParams{QueueDepth: 10000, MaxConcurrency: 1000, InitialCapacity: 1000})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = br.Maybe(ctx, noop)
			}
		})
	})
}
