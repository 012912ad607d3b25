package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/servingkit/servingkit/queue"
	"github.com/servingkit/servingkit/stats"
)

func ExampleBreaker() {
	b, err := queue.NewBreaker(queue.BreakerParams{QueueDepth: 1, MaxConcurrency: 2, InitialCapacity: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(b.TryAcquire(), b.TryAcquire()) // capacity 1: the second is refused

	// Fill the one queue place with a waiter, then overflow it.
	got := make(chan error)
	go func() { got <- b.Acquire(context.Background()) }()
	for b.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	fmt.Println(errors.Is(b.Acquire(context.Background()), queue.ErrQueueFull))

	_ = b.UpdateConcurrency(2) // more room: the waiter gets a slot at once
	fmt.Println(<-got, b.InFlight(), b.Waiting())
	b.Release()
	b.Release()
	// Output:
	// true false
	// true
	// <nil> 2 0
}

func ExampleNew() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	})
	h, err := queue.New(app, queue.Config{ContainerConcurrency: 10, TotalTimeout: time.Minute})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h) // in production: &http.Server{Handler: h, Protocols: queue.ServerProtocols()}
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/greeting")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	// Probes are answered by the queue, not the application.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set(queue.ProbeHeader, queue.ProbeHeaderValue)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 hello from /greeting
	// 200 queue
}

func ExampleNewSidecar() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app got %s %s", r.Method, r.URL.Path)
	}))
	defer app.Close()

	h, err := queue.NewSidecar(queue.SidecarConfig{
		Config: queue.Config{ContainerConcurrency: 4},
		Target: app.Listener.Addr().String(),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("ready:", h.CheckReady(context.Background())) // TCP probe of the application

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "http://replica/orders", nil))
	fmt.Println(w.Code, w.Body.String())
	// Output:
	// ready: <nil>
	// 200 app got POST /orders
}

func ExampleReporter() {
	h, err := queue.New(http.NotFoundHandler(), queue.Config{})
	if err != nil {
		panic(err)
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: "default/hello-00001", Replica: "hello-00001-abcde"})
	if err != nil {
		panic(err)
	}
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
	rep.ReportNow(context.Background()) // Run(ctx) does this every second
	m := rep.Latest()[0]
	fmt.Println(m.Revision, m.Stat.Source, m.Stat.RPS)
	// Output: default/hello-00001 hello-00001-abcde 3
}

func ExampleAdminHandler() {
	h, err := queue.New(http.NotFoundHandler(), queue.Config{QuietPeriod: time.Millisecond})
	if err != nil {
		panic(err)
	}
	rep, err := queue.NewReporter(h.Recorder(), queue.ReporterConfig{Revision: "default/hello-00001", Replica: "pod-1"})
	if err != nil {
		panic(err)
	}
	admin := httptest.NewServer(queue.AdminHandler(h, rep))
	defer admin.Close()

	rep.ReportNow(context.Background())
	msgs, err := stats.Fetch(context.Background(), nil, admin.URL+"/stats") // what the autoscaler scrapes
	if err != nil {
		panic(err)
	}
	fmt.Println(len(msgs), msgs[0].Revision)

	for _, path := range []string{"/ready", "/wait-for-drain", "/ready"} {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s %d %s", path, resp.StatusCode, body)
	}
	// Output:
	// 1 default/hello-00001
	// /ready 200 ready
	// /wait-for-drain 200 drained
	// /ready 503 queue: draining
}

func ExampleHandler_Drain() {
	h, err := queue.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served")
	}), queue.Config{QuietPeriod: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	drained := make(chan error)
	go func() { drained <- h.Drain(context.Background()) }()
	for !h.Draining() {
		time.Sleep(time.Millisecond)
	}
	fmt.Println(h.CheckReady(context.Background()))

	w := httptest.NewRecorder() // a late request is still served
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	fmt.Println(w.Code, w.Body.String())
	fmt.Println(<-drained, h.InFlight())
	// Output:
	// queue: draining
	// 200 served
	// <nil> 0
}

func ExampleAppProbe() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	p, err := queue.NewAppProbe(queue.AppProbeConfig{Address: app.Listener.Addr().String(), Path: "/healthz"})
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Check(context.Background()))

	_, err = queue.NewAppProbe(queue.AppProbeConfig{Address: "localhost", Period: -time.Second})
	fmt.Println(err)
	// Output:
	// <nil>
	// queue: AppProbeConfig.Address = "localhost", must be host:port: address localhost: missing port in address
	// queue: AppProbeConfig.Period = -1s, must be >= 0 (0 means 50ms)
}

func ExampleConfig_Validate() {
	err := queue.Config{ContainerConcurrency: -1, TotalTimeout: -time.Second}.Validate()
	fmt.Println(err)
	// Output:
	// queue: Config.ContainerConcurrency = -1, must be in [0, 2147483647] (0 means no limit)
	// queue: Config.TotalTimeout = -1s, must be >= 0 (0 means no limit)
}

func ExampleTimeoutError() {
	cause := make(chan error, 1)
	h, err := queue.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a slow application that listens to its context
		cause <- context.Cause(r.Context())
	}), queue.Config{ResponseStartTimeout: 20 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	fmt.Print(w.Code, " ", w.Body.String())

	var te *queue.TimeoutError
	if errors.As(<-cause, &te) {
		fmt.Println(te.Kind, te.Timeout)
	}
	// Output:
	// 504 queue: request timeout: no response started within the response-start timeout (20ms)
	// response-start timeout 20ms
}

func ExampleCheckerFunc() {
	var warm bool
	h, err := queue.New(http.NotFoundHandler(), queue.Config{
		Readiness: queue.CheckerFunc(func(context.Context) error {
			if !warm {
				return errors.New("cache still loading")
			}
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(h.CheckReady(context.Background()))
	warm = true
	fmt.Println(h.CheckReady(context.Background()))
	// Output:
	// queue: not ready: cache still loading
	// <nil>
}
