package kubernetes

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/servingkit/servingkit/autoscaler"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestParseService(t *testing.T) {
	cfg := autoscaler.DefaultConfig()
	s, err := ParseService("default", "hello", map[string]string{
		TargetAnnotation:                  "deployments.apps/hello",
		HostsAnnotation:                   "hello.example.com, api.example.com",
		PortAnnotation:                    "web",
		AdminPortAnnotation:               "stats",
		ContainerConcurrencyAnnotation:    "10",
		TimeoutSecondsAnnotation:          "30",
		autoscaler.MinScaleAnnotation:     "1",
		autoscaler.MaxScaleAnnotation:     "5",
		autoscaler.TargetAnnotation:       "7",
		autoscaler.InitialScaleAnnotation: "2",
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := Target{Namespace: "default", Resource: schema.GroupResource{Group: "apps", Resource: "deployments"}, Name: "hello"}
	if s.Key != "default/hello" || s.Target != want || s.Port != "web" || s.AdminPort != "stats" ||
		s.ContainerConcurrency != 10 || s.Timeout != 30*time.Second ||
		strings.Join(s.Hosts, ",") != "hello.example.com,api.example.com" {
		t.Errorf("spec = %+v", s)
	}
	// Knative's target is scaled by the target utilization (70%): 7 × 0.7.
	if a := s.Autoscaling; a.MinScale != 1 || a.MaxScale != 5 || a.InitialScale != 2 || math.Abs(a.TargetValue-4.9) > 1e-9 {
		t.Errorf("autoscaling = min %d max %d initial %d target %v", a.MinScale, a.MaxScale, a.InitialScale, a.TargetValue)
	}
	if ac := s.Activator(); ac.ContainerConcurrency != 10 || ac.Timeout != 30*time.Second {
		t.Errorf("activator config = %+v", ac)
	}

	// Defaults: only the target.
	s, err = ParseService("ns", "web", map[string]string{TargetAnnotation: "statefulsets.apps/db"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != DefaultPort || s.AdminPort != DefaultAdminPort || s.Timeout != DefaultTimeout || s.ContainerConcurrency != 0 || s.Hosts != nil {
		t.Errorf("defaults: %+v", s)
	}
	if s.Target.Resource.Resource != "statefulsets" || s.Target.Name != "db" {
		t.Errorf("target %v", s.Target)
	}
}

func TestParseServiceErrors(t *testing.T) {
	cfg := autoscaler.DefaultConfig()
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want []string // every one in the error
	}{
		{"no target", map[string]string{}, []string{`annotation servingkit.dev/target = ""`}},
		{"target without name", map[string]string{TargetAnnotation: "deployments.apps"}, []string{`servingkit.dev/target = "deployments.apps"`, "<resource>.<group>/<name>"}},
		{"target bad name", map[string]string{TargetAnnotation: "deployments.apps/Hello_"}, []string{`servingkit.dev/target = "deployments.apps/Hello_"`}},
		{"bad host", map[string]string{TargetAnnotation: "deployments.apps/a", HostsAnnotation: "ok.example.com,Bad_Host"}, []string{"servingkit.dev/hosts", `"Bad_Host" is not one`}},
		{"bad port name", map[string]string{TargetAnnotation: "deployments.apps/a", PortAnnotation: "a-very-long-port-name"}, []string{"servingkit.dev/port", "IANA_SVC_NAME"}},
		{"cc too big", map[string]string{TargetAnnotation: "deployments.apps/a", ContainerConcurrencyAnnotation: "1001"}, []string{`servingkit.dev/container-concurrency = "1001"`, "[0, 1000]"}},
		{"cc not a number", map[string]string{TargetAnnotation: "deployments.apps/a", ContainerConcurrencyAnnotation: "ten"}, []string{`servingkit.dev/container-concurrency = "ten"`}},
		{"timeout zero", map[string]string{TargetAnnotation: "deployments.apps/a", TimeoutSecondsAnnotation: "0"}, []string{`servingkit.dev/timeout-seconds = "0"`, "[1, 3600]"}},
		{"knative annotation", map[string]string{TargetAnnotation: "deployments.apps/a", autoscaler.MinScaleAnnotation: "-1"}, []string{`autoscaling.knative.dev/min-scale = "-1"`, "[0, 2147483647]"}},
		{"all joined", map[string]string{
			ContainerConcurrencyAnnotation: "-1", TimeoutSecondsAnnotation: "99999", autoscaler.WindowAnnotation: "1s",
		}, []string{"servingkit.dev/target", "servingkit.dev/container-concurrency", "servingkit.dev/timeout-seconds", "autoscaling.knative.dev/window"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseService("default", "svc", tc.ann, cfg)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "kubernetes: Service default/svc: ") {
				t.Errorf("error %q does not name the Service", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParseService(f *testing.F) {
	f.Add("deployments.apps/hello", "a.example.com", "10", "30", "1")
	f.Add("x/y", ",,", "-1", "0", "abc")
	cfg := autoscaler.DefaultConfig()
	f.Fuzz(func(t *testing.T, target, hosts, cc, timeout, minScale string) {
		s, err := ParseService("ns", "svc", map[string]string{
			TargetAnnotation: target, HostsAnnotation: hosts, ContainerConcurrencyAnnotation: cc,
			TimeoutSecondsAnnotation: timeout, autoscaler.MinScaleAnnotation: minScale,
		}, cfg)
		if err != nil {
			return
		}
		if s.ContainerConcurrency < 0 || s.ContainerConcurrency > MaxContainerConcurrency || s.Timeout <= 0 || s.Timeout > MaxTimeout || s.Target.Name == "" {
			t.Fatalf("accepted out-of-range spec %+v", s)
		}
	})
}

func TestParseTraffic(t *testing.T) {
	tr, err := ParseTraffic("shop", "web", map[string]string{
		TrafficAnnotation: " blue=90, green=10@canary ,grey=0@next",
		HostsAnnotation:   "shop.example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Key != "shop/web" || strings.Join(tr.Hosts, ",") != "shop.example.com" {
		t.Errorf("spec = %+v", tr)
	}
	if got := tr.Table.String(); !strings.Contains(got, "shop/blue") {
		t.Errorf("table %s", got)
	}
	def := map[string]int{}
	for _, sh := range tr.Table.Default {
		def[sh.Revision] = sh.Percent
	}
	if len(def) != 3 || def["shop/blue"] != 90 || def["shop/green"] != 10 || def["shop/grey"] != 0 {
		t.Errorf("default split %v, want blue 90, green 10, grey 0", def)
	}
	if g := tr.Table.Tags["canary"]; len(g) != 1 || g[0].Revision != "shop/green" || g[0].Percent != 100 {
		t.Errorf("tag canary: %v", g)
	}
	if g := tr.Table.Tags["next"]; len(g) != 1 || g[0].Revision != "shop/grey" {
		t.Errorf("tag next: %v", g)
	}
	if got := strings.Join(tr.Targets(), ","); got != "shop/blue,shop/green,shop/grey" {
		t.Errorf("targets %s", got)
	}
}

func TestParseTrafficErrors(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string
	}{
		{"blue=60,green=30", "traffic = 90: Traffic targets sum to 90, want 100"},
		{"blue=100,green", `entry "green" has no "="`},
		{"Blue=100", `"Blue" is not a Service name`},
		{"blue=101", `entry "blue=101": percent must be an integer in [0, 100]`},
		{"blue=x", `entry "blue=x": percent must be an integer in [0, 100]`},
		{"blue=50,blue=50", `Service "blue" named twice`},
		{"blue=50@a,green=50@a", "must be unique"},
		{"blue=100@Bad_Tag", "traffic[0].tag = Bad_Tag"},
		{"", "(no entry)"},
		{" , ", "(no entry)"},
	} {
		_, err := ParseTraffic("shop", "web", map[string]string{TrafficAnnotation: tc.value})
		if err == nil {
			t.Errorf("%q: no error", tc.value)
			continue
		}
		msg := err.Error()
		for _, w := range []string{"Service shop/web", `annotation servingkit.dev/traffic = "` + tc.value + `"`, tc.want} {
			if !strings.Contains(msg, w) {
				t.Errorf("%q: error %q does not contain %q", tc.value, msg, w)
			}
		}
	}
	if _, err := ParseTraffic("shop", "web", map[string]string{TrafficAnnotation: "a=100", HostsAnnotation: "Bad Host"}); err == nil ||
		!strings.Contains(err.Error(), HostsAnnotation) {
		t.Errorf("bad hosts: %v", err)
	}
}
