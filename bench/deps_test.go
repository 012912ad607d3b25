package bench

// The Knative packages the comparisons use, kept in go.mod by this import.
import (
	_ "knative.dev/serving/pkg/activator/net"
	_ "knative.dev/serving/pkg/autoscaler/aggregation"
	_ "knative.dev/serving/pkg/autoscaler/scaling"
	_ "knative.dev/serving/pkg/queue"
)
