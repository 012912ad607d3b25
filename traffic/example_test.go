package traffic_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/servingkit/servingkit/traffic"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ExampleSpec() {
	s := traffic.Spec{Traffic: []traffic.Target{
		{ConfigurationName: "hello", Percent: 90},
		{RevisionName: "hello-00001", Percent: 10, Tag: "previous"},
	}}
	s.SetDefaults()
	fmt.Println(s.Validate(), *s.Traffic[0].LatestRevision, s.Configurations())
	// Output: <nil> true [hello]
}

func ExampleTarget() {
	// A tag at 0%: reachable only at its own host.
	t := traffic.Target{RevisionName: "hello-00002", Tag: "candidate"}
	s := traffic.Spec{Traffic: []traffic.Target{{ConfigurationName: "hello", Percent: 100}, t}}
	tbl, _ := traffic.Resolve(s, traffic.LatestReadyMap{"hello": "hello-00001"})
	fmt.Println(tbl)
	// Output: default: hello-00001 100%, hello-00002 0%; tag candidate: hello-00002 100%
}

func ExampleFieldError() {
	err := traffic.Spec{Traffic: []traffic.Target{
		{RevisionName: "a", Percent: 60, Tag: "x"},
		{RevisionName: "b", Percent: 60, Tag: "x"},
	}}.Validate()
	fmt.Println(err)
	var fe *traffic.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Path, fe.Value, errors.Is(err, traffic.ErrInvalidSpec))
	}
	// Output:
	// traffic: traffic[1].tag = "x": must be unique, already used by traffic[0].tag
	// traffic: traffic = 120: Traffic targets sum to 120, want 100
	// traffic[1].tag x true
}

func ExampleParseSpec() {
	s, err := traffic.ParseSpec([]byte(`{"traffic":[{"revisionName":"a","percent":101},{"revisionName":"b","percent":-1}]}`), "")
	fmt.Println(len(s.Traffic))
	fmt.Println(err)
	// Output:
	// 0
	// traffic: traffic[0].percent = 101: expected 0 <= 101 <= 100
	// traffic: traffic[1].percent = -1: expected 0 <= -1 <= 100
}

func ExampleResolve() {
	s := traffic.Spec{Traffic: []traffic.Target{
		{ConfigurationName: "hello", Percent: 50, Tag: "latest"},
		{RevisionName: "hello-00002", Percent: 25},
		{ConfigurationName: "hello", Percent: 25},
	}}
	tbl, err := traffic.Resolve(s, traffic.LatestReadyMap{"hello": "hello-00003"})
	fmt.Println(tbl, err)
	// Output: default: hello-00003 75%, hello-00002 25%; tag latest: hello-00003 100% <nil>
}

func ExampleTargetError() {
	_, err := traffic.Resolve(traffic.Spec{DefaultConfiguration: "hello"}, traffic.LatestReadyMap{})
	var te *traffic.TargetError
	fmt.Println(errors.As(err, &te), te.Configuration, errors.Is(err, traffic.ErrNoReadyRevision))
	fmt.Println(err)
	// Output:
	// true hello true
	// traffic: traffic[0]: configuration "hello" has no ready revision
}

func ExampleLatestReady() {
	var latest traffic.LatestReady = traffic.LatestReadyMap{"hello": "hello-00007"}
	rev, ok := latest.LatestReadyRevision("hello")
	fmt.Println(rev, ok)
	// Output: hello-00007 true
}

func ExampleLatestReadyFunc() {
	store := map[string][]string{"hello": {"hello-00001", "hello-00002"}} // ready revisions, oldest first
	latest := traffic.LatestReadyFunc(func(c string) (string, bool) {
		revs := store[c]
		if len(revs) == 0 {
			return "", false
		}
		return revs[len(revs)-1], true
	})
	tbl, _ := traffic.Resolve(traffic.Spec{DefaultConfiguration: "hello"}, latest)
	fmt.Println(tbl)
	// Output: default: hello-00002 100%
}

func ExampleLatestReadyMap() {
	m := traffic.LatestReadyMap{"hello": "hello-00001", "draft": ""}
	_, ok := m.LatestReadyRevision("draft")
	fmt.Println(ok)
	// Output: false
}

func ExampleShare() {
	tbl, _ := traffic.Resolve(traffic.Spec{DefaultConfiguration: "hello"}, traffic.LatestReadyMap{"hello": "hello-00001"})
	fmt.Printf("%+v\n", tbl.Default[0])
	// Output: {Revision:hello-00001 Percent:100 Configuration:hello Latest:true}
}

func ExampleTable() {
	tbl := &traffic.Table{
		Default: []traffic.Share{{Revision: "a", Percent: 90}, {Revision: "b", Percent: 10}},
		Tags:    map[string][]traffic.Share{"b": {{Revision: "b", Percent: 100}}},
	}
	fmt.Println(tbl.Validate(), tbl.Group("b"))
	// Output: <nil> [{b 100  false}]
}

func ExampleSplit() {
	s, _ := traffic.NewSplit([]traffic.Share{{Revision: "stable", Percent: 90}, {Revision: "canary", Percent: 10}})
	fmt.Println(s, s.Len())
	// Sticky: a key gets the same revision every time, in every process.
	for _, user := range []string{"user-20", "user-21", "user-22", "user-23"} {
		fmt.Print(s.Sticky(user), " ")
	}
	fmt.Println()
	// Random picks need no key.
	_ = s.Random()
	// Output:
	// stable 90%, canary 10% 2
	// stable stable canary stable
}

func ExampleSplit_Rebalance() {
	a, _ := traffic.NewSplit([]traffic.Share{{Revision: "a", Percent: 40}, {Revision: "b", Percent: 30}, {Revision: "c", Percent: 30}})
	shares := []traffic.Share{{Revision: "a", Percent: 30}, {Revision: "b", Percent: 30}, {Revision: "c", Percent: 40}}
	rebalanced, _ := a.Rebalance(shares)
	fresh, _ := traffic.NewSplit(shares)
	// 10% moved from a to c: rebalancing moves 10% of the keys, laying the
	// split out afresh would move 20%.
	fmt.Println(a.Moved(rebalanced), a.Moved(fresh))
	data, _ := json.Marshal(rebalanced)
	fmt.Println(string(data))
	// Output:
	// 10 20
	// {"shares":[{"revision":"a","percent":30},{"revision":"b","percent":30},{"revision":"c","percent":40}],"layout":[[0,30],[2,10],[1,30],[2,30]]}
}

func ExampleHash() {
	s, _ := traffic.NewSplit([]traffic.Share{{Revision: "a", Percent: 50}, {Revision: "b", Percent: 50}})
	// The hash is fixed across processes and versions, so router replicas
	// and restarts agree on every key.
	fmt.Printf("%016x\n", traffic.Hash("user-42"))
	fmt.Println(s.Revision(s.Index(traffic.Hash("user-42"))), s.Sticky("user-42"))
	// Output:
	// 4780c482fbfccbf2
	// a a
}

// A route follows the latest revision of "hello" with a 120 s rollout.
func ExampleRolloutConfig() {
	cfg := traffic.RolloutConfig{Duration: 120 * time.Second}
	spec := traffic.Spec{DefaultConfiguration: "hello"}
	latest := traffic.LatestReadyMap{"hello": "hello-00001"}

	want, _ := traffic.Resolve(spec, latest)
	p := cfg.Plan(nil, want, t0)
	fmt.Println(p.Table)

	latest["hello"] = "hello-00002" // a new revision is ready
	want, _ = traffic.Resolve(spec, latest)
	p = cfg.Plan(p.State, want, t0.Add(time.Second))
	fmt.Println(p.Table, p.AwaitingReady)

	// The 1% is live 2.4 s later: steps of 3% every 3 s.
	p.State.ObserveReady(t0.Add(3400*time.Millisecond), cfg.Duration)
	p = cfg.Plan(p.State, want, t0.Add(3400*time.Millisecond))
	fmt.Println(p.NextStep.Sub(t0))
	p = cfg.Plan(p.State, want, p.NextStep)
	fmt.Println(p.Table)
	// Output:
	// default: hello-00001 100%
	// default: hello-00001 99%, hello-00002 1% true
	// 6.4s
	// default: hello-00001 96%, hello-00002 4%
}

func ExamplePlan() {
	want, _ := traffic.Resolve(traffic.Spec{DefaultConfiguration: "hello"}, traffic.LatestReadyMap{"hello": "hello-00002"})
	prev := &traffic.Rollout{Configurations: []traffic.ConfigRollout{{
		ConfigurationName: "hello", Percent: 100,
		Revisions:  []traffic.RevisionRollout{{RevisionName: "hello-00001", Percent: 97}, {RevisionName: "hello-00002", Percent: 3}},
		StepParams: traffic.StepParams{StartTime: t0, StepSize: 50, StepDuration: time.Minute, NextStepTime: t0.Add(time.Minute)},
	}}}
	p := traffic.RolloutConfig{Duration: 2 * time.Minute}.Plan(prev, want, t0.Add(time.Minute))
	fmt.Println(p.Table, p.NextStep.Sub(t0), p.State.Done())
	p = traffic.RolloutConfig{Duration: 2 * time.Minute}.Plan(p.State, want, p.NextStep)
	fmt.Println(p.Table, p.NextStep.IsZero(), p.State.Done())
	// Output:
	// default: hello-00001 47%, hello-00002 53% 2m0s false
	// default: hello-00002 100% true true
}

func ExampleRollout() {
	r, err := traffic.ParseRollout([]byte(`{"configurations":[{"configurationName":"hello","percent":100,
		"revisions":[{"revisionName":"hello-00001","percent":99},{"revisionName":"hello-00002","percent":1}],
		"stepParams":{"starttime":1772366400000000000}}]}`))
	fmt.Println(err, r.Done())
	r.ObserveReady(time.Unix(0, 1772366400000000000).Add(500*time.Millisecond), 120*time.Second)
	sp := r.Configurations[0].StepParams
	fmt.Println(sp.StepSize, sp.StepDuration)

	_, err = traffic.ParseRollout([]byte(`{"configurations":[{"configurationName":"hello","percent":100,"revisions":[{"revisionName":"a","percent":90}]}]}`))
	fmt.Println(err)
	// Output:
	// <nil> false
	// 1 1.202020202s
	// traffic: configurations[0].revisions = 90: revision percents sum to 90, want the configuration's 100
}

func ExampleNewRollout() {
	tbl, _ := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{
		{ConfigurationName: "hello", Percent: 100}, {RevisionName: "pinned", Tag: "old"},
	}}, traffic.LatestReadyMap{"hello": "hello-00003"})
	data, _ := json.Marshal(traffic.NewRollout(tbl))
	fmt.Println(string(data))
	// Output: {"configurations":[{"configurationName":"hello","percent":100,"revisions":[{"revisionName":"hello-00003","percent":100}],"stepParams":{}}]}
}

func ExampleConfigRollout() {
	c := traffic.ConfigRollout{ConfigurationName: "hello", Tag: "beta", Percent: 100,
		Revisions: []traffic.RevisionRollout{{RevisionName: "b1", Percent: 100}}}
	r := &traffic.Rollout{Configurations: []traffic.ConfigRollout{c}}
	fmt.Println(r.Validate(), r.Done())
	// Output: <nil> true
}

func ExampleRevisionRollout() {
	rv := traffic.RevisionRollout{RevisionName: "hello-00002", Percent: 7}
	data, _ := json.Marshal(rv)
	fmt.Println(string(data))
	// Output: {"revisionName":"hello-00002","percent":7}
}

func ExampleStepParams() {
	p := traffic.StepParams{StartTime: time.Unix(0, 1000), StepDuration: 3 * time.Second, StepSize: 3}
	data, _ := json.Marshal(p)
	fmt.Println(string(data))
	// Output: {"starttime":1000,"stepDuration":3000000000,"stepSize":3}
}

func ExampleParseRolloutDuration() {
	d, err := traffic.ParseRolloutDuration("2m")
	fmt.Println(d, err)
	_, err = traffic.ParseRolloutDuration("90.5s")
	fmt.Println(err)
	// Output:
	// 2m0s <nil>
	// traffic: rollout-duration=90.5s is not at second precision
}

// capacity is a host's view of replicas.
type capacity struct{ ready map[string]int }

func (c capacity) NeededReplicas(string) int    { return 4 } // the configuration's min-scale
func (c capacity) ReadyReplicas(rev string) int { return c.ready[rev] }

func ExampleBudget() {
	capy := capacity{ready: map[string]int{"v1": 4, "v2": 1}}
	cfg := traffic.RolloutConfig{Duration: 10 * time.Second, Budget: &traffic.Budget{MaxExtra: 1, Capacity: capy}}
	want, _ := traffic.Resolve(traffic.Spec{DefaultConfiguration: "hello"}, traffic.LatestReadyMap{"hello": "v2"})
	prev := &traffic.Rollout{Configurations: []traffic.ConfigRollout{{ConfigurationName: "hello", Percent: 100,
		Revisions:  []traffic.RevisionRollout{{RevisionName: "v1", Percent: 90}, {RevisionName: "v2", Percent: 10}},
		StepParams: traffic.StepParams{StartTime: t0, StepSize: 50, StepDuration: time.Second, NextStepTime: t0}}}}
	// A step of 50% is due, but one replica of v2 serves only 25% of 4.
	p := cfg.Plan(prev, want, t0)
	fmt.Println(p.Table, p.Replicas)
	// Output: default: v1 75%, v2 25% map[v1:3 v2:2]
}

func ExampleCapacity() {
	var c traffic.Capacity = capacity{ready: map[string]int{"v2": 2}}
	fmt.Println(c.NeededReplicas("hello"), c.ReadyReplicas("v2"))
	// Output: 4 2
}

func ExampleRouter() {
	hello := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })
	}
	r, _ := traffic.NewRouter(traffic.RouterConfig{Domain: "example.com", StickyCookie: "session"})
	tbl, _ := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{
		{RevisionName: "hello-00001", Percent: 100}, {RevisionName: "hello-00002", Tag: "next"},
	}}, nil)
	err := r.Update([]traffic.Route{{Name: "hello", Namespace: "default", Table: tbl}},
		traffic.FrontDoorMap{"hello-00001": hello("one"), "hello-00002": hello("two")})
	fmt.Println(err)

	for _, host := range []string{"hello.default.example.com", "next-hello.default.example.com:8080", "nope.example.com"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "http://"+host+"/", nil))
		fmt.Print(w.Code, " ", w.Body.String(), "\n")
	}
	// Output:
	// <nil>
	// 200 one
	// 200 two
	// 404 traffic: no route for host "nope.example.com" and path "/"
}

func ExampleRouterConfig() {
	cfg := traffic.RouterConfig{Domain: "example.com", TagHeader: true, StickyCookie: "session", SetStickyCookie: true, StickyCookieMaxAge: 24 * time.Hour}
	fmt.Println(cfg.Validate())
	r, _ := traffic.NewRouter(cfg)
	fmt.Println(r.Host("hello", "default", ""), r.Host("hello", "default", "canary"))
	// Output:
	// <nil>
	// hello.default.example.com canary-hello.default.example.com
}

func ExampleRoute() {
	r, _ := traffic.NewRouter(traffic.RouterConfig{})
	tbl, _ := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{{RevisionName: "api-1", Percent: 100}}}, nil)
	api := traffic.Route{Name: "api", Namespace: "shop", Hosts: []string{"shop.example.com"}, PathPrefix: "/api", Table: tbl}
	fmt.Println(r.Update([]traffic.Route{api}, traffic.FrontDoorMap{}))
	for _, path := range []string{"/api/cart", "/apis"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("GET", "http://shop.example.com"+path, nil))
		fmt.Print(w.Code, " ", w.Body.String())
	}
	// Output:
	// <nil>
	// 503 traffic: revision "api-1" of route shop/api has no front door
	// 404 traffic: no route for host "shop.example.com" and path "/apis"
}

func ExampleFrontDoors() {
	var doors traffic.FrontDoors = traffic.FrontDoorMap{"a": http.NotFoundHandler()}
	fmt.Println(doors.FrontDoor("a") != nil, doors.FrontDoor("b") == nil)
	// Output: true true
}

func ExampleFrontDoorFunc() {
	frontDoor := map[string]http.Handler{"default/hello-00001": http.NotFoundHandler()}
	doors := traffic.FrontDoorFunc(func(rev string) http.Handler { return frontDoor[rev] })
	fmt.Println(doors.FrontDoor("default/hello-00001") != nil)
	// Output: true
}

func ExampleFrontDoorMap() {
	doors := traffic.FrontDoorMap{"v1": http.NotFoundHandler()}
	fmt.Println(len(doors), doors.FrontDoor("v2") == nil)
	// Output: 1 true
}

func ExampleUpdateError() {
	r, _ := traffic.NewRouter(traffic.RouterConfig{Domain: "example.com"})
	hello, _ := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{
		{RevisionName: "hello-1", Percent: 100}, {RevisionName: "hello-2", Tag: "candidate"}}}, nil)
	other, _ := traffic.Resolve(traffic.Spec{Traffic: []traffic.Target{{RevisionName: "other-1", Percent: 100}}}, nil)
	err := r.Update([]traffic.Route{
		{Name: "hello", Namespace: "default", Table: hello},
		{Name: "candidate-hello", Namespace: "default", Table: other}, // its host is hello's tag host
		{Name: "other", Namespace: "team-b", Table: other},
	}, traffic.FrontDoorMap{})
	var ue *traffic.UpdateError
	if errors.As(err, &ue) {
		for _, re := range ue.Routes {
			fmt.Println(re.Index, re.Route, re.Reason)
		}
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "http://other.team-b.example.com/", nil))
	fmt.Println(w.Code) // routed: 503 only because the example has no front doors
	// Output:
	// 1 default/candidate-hello DomainTaken
	// 503
}
