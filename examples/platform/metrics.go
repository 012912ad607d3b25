package main

import (
	"net/http"
	"strings"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	skprom "github.com/servingkit/servingkit/prometheus"
)

// metrics are the platform's Prometheus collectors, in a registry of its
// own, served at GET /metrics on the control endpoint. The replicas serve
// their queues' metrics on their own admin ports.
type metrics struct {
	reg        *prom.Registry
	router     *skprom.Router
	activator  *skprom.Activator
	autoscaler *skprom.Autoscaler
}

func newMetrics(labels func(string) skprom.RevisionLabels) (*metrics, error) {
	m := &metrics{reg: prom.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c := skprom.Config{Registerer: m.reg, Labels: labels}
	var err error
	if m.router, err = skprom.NewRouter(c); err != nil {
		return nil, err
	}
	if m.activator, err = skprom.NewActivator(c); err != nil {
		return nil, err
	}
	if m.autoscaler, err = skprom.NewAutoscaler(c); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4})
}

// revisionLabels gives Knative's labels of a revision key
// "namespace/name": the service (and configuration, which has the
// service's name here) if the revision is known.
func (p *Platform) revisionLabels(key string) skprom.RevisionLabels {
	l := skprom.SplitKey(key)
	if r := p.rev(key); r != nil {
		_, name, _ := strings.Cut(r.service, "/")
		l.Service, l.Configuration = name, name
	}
	return l
}

// replicaMetrics makes a replica's queue collector in a registry of its
// own. Its Observe goes into the queue's Config, and adminWithMetrics serves
// the registry next to the admin handler, as Knative's queue-proxy serves
// its request metrics on a port of its own.
func replicaMetrics(revision, replica string) (*skprom.Queue, *prom.Registry, error) {
	reg := prom.NewRegistry()
	q, err := skprom.NewQueue(skprom.Config{Registerer: reg}, revision, replica)
	return q, reg, err
}

// adminWithMetrics serves GET /metrics from reg and everything else from
// admin.
func adminWithMetrics(admin http.Handler, reg *prom.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 2}))
	mux.Handle("/", admin)
	return mux
}
