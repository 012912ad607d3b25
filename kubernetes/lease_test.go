package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The Lease's rules, step by step on a mock clock, against client-go's fake
// clientset (the envtest tests run the same code against a real API
// server).
func TestLeaseTakeRenewExpireRelease(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	clkA, clkB := clock.NewMock(), clock.NewMock()
	a, err := NewLease(cs.CoordinationV1(), LeaseConfig{Namespace: "sk", Prefix: "p", Duration: 3 * time.Second, Clock: clkA})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLease(cs.CoordinationV1(), LeaseConfig{Namespace: "sk", Prefix: "p", Duration: 3 * time.Second, Clock: clkB})
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "autoscaler-bucket-00-of-01"
	step := func(l *Lease, holder, want string) {
		t.Helper()
		got, err := l.TryAcquire(ctx, bucket, holder)
		if err != nil {
			t.Fatalf("TryAcquire(%s): %v", holder, err)
		}
		if got != want {
			t.Fatalf("TryAcquire(%s) = %q, want %q", holder, got, want)
		}
	}
	step(a, "a", "a") // created
	obj, err := cs.CoordinationV1().Leases("sk").Get(ctx, "p-"+bucket, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *obj.Spec.HolderIdentity != "a" || *obj.Spec.LeaseDurationSeconds != 3 {
		t.Fatalf("lease spec %+v", obj.Spec)
	}
	step(b, "b", "a") // held
	for range 5 {     // a renews every second; b never takes it
		clkA.Add(time.Second)
		clkB.Add(time.Second)
		step(a, "a", "a")
		step(b, "b", "a")
	}
	// a stops renewing: b sees no change for 3 s, then takes it.
	clkB.Add(2 * time.Second)
	step(b, "b", "a")
	clkB.Add(1 * time.Second)
	step(b, "b", "b")
	obj, _ = cs.CoordinationV1().Leases("sk").Get(ctx, "p-"+bucket, metav1.GetOptions{})
	if *obj.Spec.LeaseTransitions != 1 {
		t.Errorf("transitions = %d, want 1", *obj.Spec.LeaseTransitions)
	}
	step(a, "a", "b") // a comes back: b's claim is fresh to a
	// b releases: a may take it at once.
	if err := b.Release(ctx, bucket, "b"); err != nil {
		t.Fatal(err)
	}
	step(a, "a", "a")
	// Release by a non-holder does nothing.
	if err := b.Release(ctx, bucket, "b"); err != nil {
		t.Fatal(err)
	}
	step(a, "a", "a")
}

func TestLeaseConfigValidate(t *testing.T) {
	err := LeaseConfig{Duration: 10 * time.Millisecond, Prefix: "Bad_Prefix"}.Validate()
	for _, want := range []string{"LeaseConfig.Namespace is empty", "LeaseConfig.Duration = 10ms, want ≥ 1s", `LeaseConfig.Prefix = "Bad_Prefix"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
	if err := (LeaseConfig{Namespace: "sk"}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}
