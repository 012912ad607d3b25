package kubernetes

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/util/retry"
)

// Scaler is an autoscaler.Scaler that sets spec.replicas of each revision's
// target workload through its scale subresource, so that any kind with one
// works (Deployment, StatefulSet, ReplicaSet, custom resources). A write
// that loses a race with another writer (409 Conflict) is read and tried
// again, with client-go's default conflict backoff.
type Scaler struct {
	// Scales reaches the scale subresources: scale.New or
	// scale.NewForConfig with a discovery REST mapper.
	Scales scale.ScalesGetter
	// Target returns the workload of a revision key; ok false means the
	// revision is unknown, an error for the autoscaler to retry.
	Target func(revision string) (Target, bool)
}

// Scale implements autoscaler.Scaler. It writes only when the replica count
// differs, so a repeated call costs one GET.
func (s *Scaler) Scale(ctx context.Context, revision string, n int) error {
	t, ok := s.Target(revision)
	if !ok {
		return fmt.Errorf("kubernetes: scale %q: unknown revision", revision)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := s.Scales.Scales(t.Namespace).Get(ctx, t.Resource, t.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if int(sc.Spec.Replicas) == n {
			return nil
		}
		sc.Spec.Replicas = int32(n)
		_, err = s.Scales.Scales(t.Namespace).Update(ctx, t.Resource, sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("kubernetes: scale %s to %d: %w", t, n, err)
	}
	return nil
}

// Replicas returns the target's spec.replicas.
func (s *Scaler) Replicas(ctx context.Context, t Target) (int, error) {
	sc, err := s.Scales.Scales(t.Namespace).Get(ctx, t.Resource, t.Name, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	return int(sc.Spec.Replicas), nil
}
