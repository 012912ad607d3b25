package kubernetes

import (
	"context"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/scale/fake"
	k8stesting "k8s.io/client-go/testing"
)

// The Scaler reads the scale, writes only a changed count, and retries a
// write that lost a race (409 Conflict) after reading again.
func TestScalerRetriesConflicts(t *testing.T) {
	target := Target{Namespace: "default", Resource: schema.GroupResource{Group: "apps", Resource: "deployments"}, Name: "hello"}
	replicas := int32(1)
	var gets, updates, conflicts int
	fc := &fake.FakeScaleClient{}
	fc.AddReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		gets++
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
			Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}, nil
	})
	fc.AddReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		updates++
		if conflicts < 2 {
			conflicts++
			replicas++ // someone else wrote
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, "hello", nil)
		}
		sc := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		replicas = sc.Spec.Replicas
		return true, sc, nil
	})
	s := &Scaler{Scales: fc, Target: func(rev string) (Target, bool) { return target, rev == "default/hello" }}
	if err := s.Scale(context.Background(), "default/hello", 5); err != nil {
		t.Fatal(err)
	}
	if replicas != 5 || updates != 3 || gets != 3 {
		t.Errorf("replicas %d after %d gets and %d updates, want 5 after 3 and 3", replicas, gets, updates)
	}
	// Same count: one read, no write.
	gets, updates = 0, 0
	if err := s.Scale(context.Background(), "default/hello", 5); err != nil {
		t.Fatal(err)
	}
	if gets != 1 || updates != 0 {
		t.Errorf("unchanged count: %d gets, %d updates, want 1 and 0", gets, updates)
	}
	err := s.Scale(context.Background(), "default/other", 1)
	if err == nil || !strings.Contains(err.Error(), `unknown revision`) {
		t.Errorf("unknown revision: %v", err)
	}
}
