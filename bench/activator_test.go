package bench

// The activator comparisons build Knative's real activator Throttler and
// handler chain, fed by Knative's fake Kubernetes informers and clients.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	pkgnet "knative.dev/networking/pkg/apis/networking"
	netcfg "knative.dev/networking/pkg/config"
	netprobe "knative.dev/networking/pkg/http/probe"
	fakekubeclient "knative.dev/pkg/client/injection/kube/client/fake"
	fakeendpointsinformer "knative.dev/pkg/client/injection/kube/informers/core/v1/endpoints/fake"
	fakeserviceinformer "knative.dev/pkg/client/injection/kube/informers/core/v1/service/fake"
	"knative.dev/pkg/logging"
	"knative.dev/pkg/ptr"
	rtesting "knative.dev/pkg/reconciler/testing"
	tracingconfig "knative.dev/pkg/tracing/config"
	knactivator "knative.dev/serving/pkg/activator"
	activatorconfig "knative.dev/serving/pkg/activator/config"
	knhandler "knative.dev/serving/pkg/activator/handler"
	knnet "knative.dev/serving/pkg/activator/net"
	"knative.dev/serving/pkg/apis/serving"
	v1 "knative.dev/serving/pkg/apis/serving/v1"
	asmetrics "knative.dev/serving/pkg/autoscaler/metrics"
	fakeservingclient "knative.dev/serving/pkg/client/injection/client/fake"
	fakerevisioninformer "knative.dev/serving/pkg/client/injection/informers/serving/v1/revision/fake"
	pkghttp "knative.dev/serving/pkg/http"
	pkghandler "knative.dev/serving/pkg/http/handler"
	"knative.dev/serving/pkg/networking"

	"github.com/servingkit/servingkit/activator"
)

const benchNS, benchRev = "bench", "hello-00001"

// knative is Knative's real activator Throttler for one revision, built the
// way its own tests build it: fake Kubernetes informers in the context, a
// Revision object, and a private Endpoints object listing the replicas,
// which its revision backends manager picks up (mesh mode disabled, so
// ready addresses are trusted without probing) and turns into pod
// trackers.
type knative struct {
	ctx   context.Context
	th    *knnet.Throttler
	revID types.NamespacedName
}

func newKnative(b *testing.B, cc, pods int) *knative {
	b.Helper()
	quiet := func(ctx context.Context) context.Context { return logging.WithLogger(ctx, zap.NewNop().Sugar()) }
	ctx, cancel, _ := rtesting.SetupFakeContextWithCancel(b, quiet)
	revID := types.NamespacedName{Namespace: benchNS, Name: benchRev}
	rev := &v1.Revision{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: benchRev},
		Spec: v1.RevisionSpec{
			ContainerConcurrency: ptr.Int64(int64(cc)),
			TimeoutSeconds:       ptr.Int64(300),
			PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
				Ports: []corev1.ContainerPort{{Name: string(pkgnet.ProtocolHTTP1)}},
			}}},
		},
	}
	if _, err := fakeservingclient.Get(ctx).ServingV1().Revisions(benchNS).Create(ctx, rev, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	revisions := fakerevisioninformer.Get(ctx)
	if err := revisions.Informer().GetIndexer().Add(rev); err != nil {
		b.Fatal(err)
	}
	endpoints := fakeendpointsinformer.Get(ctx)
	services := fakeserviceinformer.Get(ctx)
	waitInformers, err := rtesting.RunAndSyncInformers(ctx, endpoints.Informer(), revisions.Informer(), services.Informer())
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cancel()
		waitInformers()
	})

	th := knnet.NewThrottler(ctx, "10.10.10.10")
	go th.Run(ctx, probeOK{}, false, netcfg.MeshCompatibilityModeDisabled)

	subset := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "http", Port: 8012}}}
	for i := range pods {
		subset.Addresses = append(subset.Addresses, corev1.EndpointAddress{IP: fmt.Sprintf("10.0.0.%d", i+1)})
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: benchNS,
			Name:      benchRev + "-private",
			Labels: map[string]string{
				serving.RevisionUID:       "uid-1",
				networking.ServiceTypeKey: string(networking.ServiceTypePrivate),
				serving.RevisionLabelKey:  benchRev,
			},
		},
		Subsets: []corev1.EndpointSubset{subset},
	}
	if _, err := fakekubeclient.Get(ctx).CoreV1().Endpoints(benchNS).Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	// The update reaches the throttler asynchronously: wait until every
	// pod's slots are there.
	deadline := time.Now().Add(10 * time.Second)
	want := cc * pods
	if cc == 0 {
		want = 1
	}
	for {
		if n := knTryHold(ctx, th, revID, want); n == want {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("Knative's throttler never reached capacity %d", want)
		}
	}
	return &knative{ctx: ctx, th: th, revID: revID}
}

// knTryHold takes up to n slots at once and reports how many it got.
func knTryHold(ctx context.Context, th *knnet.Throttler, revID types.NamespacedName, n int) int {
	got := make(chan struct{}, n)
	release := make(chan struct{})
	done := make(chan struct{}, n)
	for range n {
		go func() {
			tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			_ = th.Try(tctx, revID, func(string) error {
				got <- struct{}{}
				<-release
				return nil
			})
			done <- struct{}{}
		}()
	}
	timeout := time.After(50 * time.Millisecond)
	count := 0
loop:
	for count < n {
		select {
		case <-got:
			count++
		case <-timeout:
			break loop
		}
	}
	close(release)
	for range n {
		<-done
	}
	return count
}

// probeOK answers every probe the way a ready queue-proxy does.
type probeOK struct{}

func (probeOK) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte("queue"))), Request: r}, nil
}

func newServingkit(b *testing.B, cc, pods int, rt http.RoundTripper) *activator.Handler {
	b.Helper()
	h, err := activator.New(activator.Options{Transport: rt})
	if err != nil {
		b.Fatal(err)
	}
	if err := h.SetRevision(benchRev, activator.RevisionConfig{ContainerConcurrency: cc}); err != nil {
		b.Fatal(err)
	}
	addrs := make([]string, pods)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.0.%d:8012", i+1)
	}
	if err := h.SetReplicas(benchRev, addrs); err != nil {
		b.Fatal(err)
	}
	return h
}

// Throttler acquire/release per request, with 10 replicas: servingkit's
// Throttler.Acquire + Lease.Release against Knative's Throttler.Try with an
// empty function (revision breaker, LB policy pick, pod tracker
// reservation, both releases). CC 1 → first available, CC 10 → round
// robin, CC 0 → power of two choices in both (Knative's default rule).
func BenchmarkActivatorThrottler(b *testing.B) {
	noop := func(string) error { return nil }
	const pods = 10
	for _, cc := range []int{1, 10, 0} {
		b.Run(fmt.Sprintf("cc=%d/servingkit/sequential", cc), func(b *testing.B) {
			th := newServingkit(b, cc, pods, nil).Throttler
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				l, err := th.Acquire(ctx, benchRev)
				if err != nil {
					b.Fatal(err)
				}
				l.Release()
			}
		})
		b.Run(fmt.Sprintf("cc=%d/knative/sequential", cc), func(b *testing.B) {
			kn := newKnative(b, cc, pods)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := kn.th.Try(ctx, kn.revID, noop); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("cc=%d/servingkit/parallel", cc), func(b *testing.B) {
			th := newServingkit(b, cc, pods, nil).Throttler
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l, err := th.Acquire(ctx, benchRev)
					if err != nil {
						b.Error(err)
						return
					}
					l.Release()
				}
			})
		})
		b.Run(fmt.Sprintf("cc=%d/knative/parallel", cc), func(b *testing.B) {
			kn := newKnative(b, cc, pods)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := kn.th.Try(ctx, kn.revID, noop); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// bodyRT answers every request with a 1 KiB body, as Knative's
// BenchmarkHandlerChain does.
type bodyRT struct{ body []byte }

func (t bodyRT) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(t.body)),
		ContentLength: int64(len(t.body)), Request: r,
	}, nil
}

type sink struct {
	h    http.Header
	code int
	n    int
}

func (s *sink) Header() http.Header         { return s.h }
func (s *sink) Write(p []byte) (int, error) { s.n += len(p); return len(p), nil }
func (s *sink) WriteHeader(code int)        { s.code = code }

// One request through the whole activator, CC 10 and 10 replicas, the
// replica answering with 1 KiB from a fake RoundTripper:
//   - direct: the RoundTripper called directly, body copied out (the floor);
//   - servingkit: activator.Handler (resolve, stats, timeout, throttler,
//     reverse proxy);
//   - knative: the handler chain of Knative's cmd/activator/main.go minus
//     OpenTelemetry — health, netprobe, probe, context, full duplex,
//     metrics, request log (to io.Discard), tracing (off), concurrency
//     reporter, timeout, activation handler — over its real Throttler.
func BenchmarkActivatorHandler(b *testing.B) {
	const cc, pods = 10, 10
	rt := bodyRT{body: bytes.Repeat([]byte("x"), 1024)}
	newReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.Header.Set(knactivator.RevisionHeaderNamespace, benchNS)
		r.Header.Set(knactivator.RevisionHeaderName, benchRev)
		return r
	}
	check := func(b *testing.B, s *sink) {
		if s.code != http.StatusOK || s.n != 1024 {
			b.Fatalf("status %d, %d bytes", s.code, s.n)
		}
	}
	run := func(b *testing.B, h http.Handler) {
		b.Run("sequential", func(b *testing.B) {
			req := newReq()
			s := &sink{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(s.h)
				s.n = 0
				h.ServeHTTP(s, req)
			}
			check(b, s)
		})
		b.Run("parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := newReq()
				s := &sink{h: http.Header{}}
				for pb.Next() {
					clear(s.h)
					s.n = 0
					h.ServeHTTP(s, req)
				}
			})
		})
	}
	b.Run("direct", func(b *testing.B) {
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, err := rt.RoundTrip(r)
			if err != nil {
				b.Fatal(err)
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
			_ = resp.Body.Close()
		}))
	})
	b.Run("servingkit", func(b *testing.B) {
		h, err := activator.New(activator.Options{
			Transport: rt,
			Resolver: activator.ResolverFunc(func(r *http.Request) (string, error) {
				return r.Header.Get(knactivator.RevisionHeaderName), nil
			}),
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.SetRevision(benchRev, activator.RevisionConfig{ContainerConcurrency: cc}); err != nil {
			b.Fatal(err)
		}
		addrs := make([]string, pods)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("10.0.0.%d:8012", i+1)
		}
		if err := h.SetReplicas(benchRev, addrs); err != nil {
			b.Fatal(err)
		}
		run(b, h)
	})
	b.Run("knative", func(b *testing.B) {
		kn := newKnative(b, cc, pods)
		ctx := kn.ctx
		logger := logging.FromContext(ctx)
		store := activatorconfig.NewStore(logger)
		store.OnConfigChanged(&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: tracingconfig.ConfigName},
			Data:       map[string]string{"backend": "none"},
		})
		statCh := make(chan []asmetrics.StatMessage)
		reporter := knhandler.NewConcurrencyReporter(ctx, "activator-pod", statCh)
		go reporter.Run(ctx.Done())
		go func() {
			for {
				select {
				case <-statCh:
				case <-ctx.Done():
					return
				}
			}
		}()
		var ah http.Handler = knhandler.New(ctx, kn.th, rt, false, logger, false)
		ah = pkghandler.NewTimeoutHandler(ah, "activator request timeout", func(r *http.Request) (time.Duration, time.Duration, time.Duration) {
			return 300 * time.Second, 0, 0
		})
		ah = reporter.Handler(ah)
		ah = knhandler.NewTracingHandler(ah)
		reqLog, err := pkghttp.NewRequestLogHandler(ah, io.Discard, "", nil, false)
		if err != nil {
			b.Fatal(err)
		}
		ah = knhandler.NewMetricHandler("activator-pod", reqLog)
		ah = knhandler.WrapActivatorHandlerWithFullDuplex(ah, logger)
		ah = knhandler.NewContextHandler(ctx, ah, store)
		ah = &knhandler.ProbeHandler{NextHandler: ah}
		ah = netprobe.NewHandler(ah)
		ah = &knhandler.HealthHandler{HealthCheck: func() error { return nil }, NextHandler: ah, Logger: logger}
		run(b, ah)
	})
}
