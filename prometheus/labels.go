package prometheus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	prom "github.com/prometheus/client_golang/prometheus"
)

// RevisionLabels are Knative's labels of a revision's metrics.
type RevisionLabels struct {
	Namespace     string // namespace_name
	Service       string // service_name
	Configuration string // configuration_name
	Revision      string // revision_name
}

// SplitKey is the default Config.Labels: a key "namespace/name" gives
// namespace_name and revision_name; a key without a slash is the revision
// name alone. Service and configuration are left empty: the core does not
// know them (give Config.Labels to fill them in).
func SplitKey(revision string) RevisionLabels {
	if ns, name, ok := strings.Cut(revision, "/"); ok {
		return RevisionLabels{Namespace: ns, Revision: name}
	}
	return RevisionLabels{Revision: revision}
}

// Label names, Knative's.
const (
	labelNamespace     = "namespace_name"
	labelService       = "service_name"
	labelConfiguration = "configuration_name"
	labelRevision      = "revision_name"
	labelPod           = "pod_name"
	labelCode          = "response_code"
	labelCodeClass     = "response_code_class"
)

var revisionLabelNames = []string{labelNamespace, labelService, labelConfiguration, labelRevision}

func (l RevisionLabels) values() []string {
	return []string{l.Namespace, l.Service, l.Configuration, l.Revision}
}

func (l RevisionLabels) match() prom.Labels {
	return prom.Labels{labelNamespace: l.Namespace, labelService: l.Service, labelConfiguration: l.Configuration, labelRevision: l.Revision}
}

// DefaultLatencyBuckets are the upper bounds, in milliseconds, of the
// latency histograms: 5 ms to 5 minutes (Knative's revision timeout).
var DefaultLatencyBuckets = []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}

// Config configures a collector. The zero value is a working default.
type Config struct {
	// Registerer is where the collector's metrics are registered. Nil
	// means prometheus.DefaultRegisterer.
	Registerer prom.Registerer
	// Labels gives a revision key's Knative labels. Nil means SplitKey.
	// It is called once per revision and collector, not per request.
	Labels func(revision string) RevisionLabels
	// LatencyBuckets are the latency histograms' upper bounds in
	// milliseconds, increasing. Nil means DefaultLatencyBuckets.
	LatencyBuckets []float64
}

// Validate reports every bad field.
func (c Config) Validate() error {
	var errs []error
	for i, b := range c.LatencyBuckets {
		if i > 0 && b <= c.LatencyBuckets[i-1] {
			errs = append(errs, fmt.Errorf("prometheus: Config.LatencyBuckets[%d] = %v, must be greater than the bucket before it (%v)", i, b, c.LatencyBuckets[i-1]))
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Registerer == nil {
		c.Registerer = prom.DefaultRegisterer
	}
	if c.Labels == nil {
		c.Labels = SplitKey
	}
	if c.LatencyBuckets == nil {
		c.LatencyBuckets = DefaultLatencyBuckets
	}
	return c
}

// register registers every collector, or none: on an error those already
// registered are unregistered again.
func register(r prom.Registerer, cs ...prom.Collector) error {
	for i, c := range cs {
		if err := r.Register(c); err != nil {
			for _, done := range cs[:i] {
				r.Unregister(done)
			}
			return fmt.Errorf("prometheus: register: %w", err)
		}
	}
	return nil
}

// codeClass is Knative's response_code_class: "1xx" … "5xx", and "5xx"
// for any other code.
func codeClass(code int) string {
	if code >= 100 && code < 600 {
		return classNames[code/100-1]
	}
	return "5xx"
}

var classNames = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// requestMetrics are a request counter and a latency histogram by
// revision (and more fixed labels) and response code, with the children
// cached so that a request costs no label hashing and no allocation: one
// atomic map load, then an atomic pointer per code.
type requestMetrics struct {
	count   *prom.CounterVec
	latency *prom.HistogramVec
	labels  func(string) RevisionLabels
	extra   []string // values of the labels after the revision's, before the codes

	mu   sync.Mutex                            // serializes adding to revs
	revs atomic.Pointer[map[string]*codeTable] // copied on write
}

// codeTable holds a revision's children by response code (100–599; other
// codes share slot 0).
type codeTable struct {
	labels RevisionLabels
	codes  [600]atomic.Pointer[codeChildren]
}

type codeChildren struct {
	count   prom.Counter
	latency prom.Observer
}

func newRequestMetrics(c Config, countName, countHelp, latencyName, latencyHelp string, extraNames []string, extraValues []string, constLabels prom.Labels) *requestMetrics {
	names := append(append(append([]string(nil), revisionLabelNames...), extraNames...), labelCode, labelCodeClass)
	m := &requestMetrics{
		count: prom.NewCounterVec(prom.CounterOpts{Name: countName, Help: countHelp, ConstLabels: constLabels}, names),
		latency: prom.NewHistogramVec(prom.HistogramOpts{Name: latencyName, Help: latencyHelp, Buckets: c.LatencyBuckets, ConstLabels: constLabels},
			names),
		labels: c.Labels,
		extra:  extraValues,
	}
	empty := map[string]*codeTable{}
	m.revs.Store(&empty)
	return m
}

// observe counts one request of revision with code that took ms.
func (m *requestMetrics) observe(revision string, code int, ms float64) {
	t := (*m.revs.Load())[revision]
	if t == nil {
		t = m.addRevision(revision)
	}
	slot := code
	if slot < 100 || slot >= 600 {
		slot = 0
	}
	ch := t.codes[slot].Load()
	if ch == nil {
		ch = m.addCode(t, slot, code)
	}
	ch.count.Inc()
	ch.latency.Observe(ms)
}

func (m *requestMetrics) addRevision(revision string) *codeTable {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.revs.Load()
	if t := old[revision]; t != nil {
		return t
	}
	t := &codeTable{labels: m.labels(revision)}
	next := make(map[string]*codeTable, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[revision] = t
	m.revs.Store(&next)
	return t
}

func (m *requestMetrics) addCode(t *codeTable, slot, code int) *codeChildren {
	values := append(append(t.labels.values(), m.extra...), strconv.Itoa(code), codeClass(code))
	ch := &codeChildren{count: m.count.WithLabelValues(values...), latency: m.latency.WithLabelValues(values...)}
	// Two requests may race to add the same code: both get the same
	// children from the vectors, so either may win.
	t.codes[slot].Store(ch)
	return ch
}

// forget deletes every series of revision.
func (m *requestMetrics) forget(revision string) {
	m.mu.Lock()
	old := *m.revs.Load()
	t := old[revision]
	if t != nil {
		next := make(map[string]*codeTable, len(old))
		for k, v := range old {
			if k != revision {
				next[k] = v
			}
		}
		m.revs.Store(&next)
	}
	m.mu.Unlock()
	l := m.labels(revision)
	if t != nil {
		l = t.labels
	}
	m.count.DeletePartialMatch(l.match())
	m.latency.DeletePartialMatch(l.match())
}

func (m *requestMetrics) collectors() []prom.Collector { return []prom.Collector{m.count, m.latency} }
