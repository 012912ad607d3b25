package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Ranges shared by the config keys and the annotations (Knative's
// pkg/apis/autoscaling).
const (
	// TargetMin is the smallest per-replica target: 0.01.
	TargetMin = 0.01
	// WindowMin and WindowMax bound the stable window; WindowMax also caps
	// the scale-down delay and the pod retention period.
	WindowMin = 6 * time.Second
	WindowMax = time.Hour
	// PanicWindowPercentageMin and PanicWindowPercentageMax bound the panic
	// window as a percentage of the stable window.
	PanicWindowPercentageMin = 1.0
	PanicWindowPercentageMax = 100.0
	// PanicThresholdPercentageMin and PanicThresholdPercentageMax bound the
	// panic-threshold-percentage annotation.
	PanicThresholdPercentageMin = 110.0
	PanicThresholdPercentageMax = 1000.0
	// DefaultTickInterval is how often a Runner decides for each revision.
	DefaultTickInterval = 2 * time.Second
	// DefaultScrapeInterval is how often a Runner scrapes each revision.
	DefaultScrapeInterval = time.Second
	// DefaultActivationTimeout is how long a revision may try to activate
	// before it is scaled back to zero: Knative's default progress deadline
	// (600 s) plus its 30 s buffer.
	DefaultActivationTimeout = 630 * time.Second
)

// FieldError is one invalid setting: the field or key, the value given, and
// what is allowed. Validation joins one FieldError per problem with
// errors.Join; use errors.As to inspect them.
type FieldError struct {
	// Field is the config key ("stable-window"), the annotation
	// ("autoscaling.knative.dev/window") or the Go field ("TargetValue").
	Field string
	// Value is the value given, as text.
	Value string
	// Want says what is allowed, usually a range.
	Want string
}

func (e *FieldError) Error() string {
	return "autoscaler: " + e.Field + " = " + strconv.Quote(e.Value) + ": want " + e.Want
}

// Config is the cluster-wide autoscaler configuration: Knative's
// config-autoscaler ConfigMap. Start from DefaultConfig (the zero value is
// not valid) or parse the ConfigMap's data with ParseConfig. Each field
// names its key, its Knative default and its allowed range.
type Config struct {
	// EnableScaleToZero (enable-scale-to-zero) lets idle revisions scale to
	// zero; when false they stay at one replica at least. Default true.
	EnableScaleToZero bool
	// ContainerConcurrencyTargetFraction (container-concurrency-target-percentage)
	// is the share of a replica's concurrency the autoscaler aims for. The
	// key takes a percentage (70) or, for legacy, a fraction in (0, 1]; the
	// field holds the fraction. Default 0.7; range (0, 1].
	ContainerConcurrencyTargetFraction float64
	// ContainerConcurrencyTargetDefault (container-concurrency-target-default)
	// is the concurrency per replica assumed when the revision sets no
	// container concurrency. Default 100; × the fraction must be ≥ 0.01.
	ContainerConcurrencyTargetDefault float64
	// TargetUtilization is the share of RPSTargetDefault aimed for with the
	// rps metric. It has no key in Knative (always 0.7). Range (0, 1].
	TargetUtilization float64
	// RPSTargetDefault (requests-per-second-target-default) is the requests
	// per second one replica takes. Default 200; ≥ 0.01.
	RPSTargetDefault float64
	// TargetBurstCapacity (target-burst-capacity) is the spare capacity kept
	// before the activator leaves the request path. Default 211; ≥ 0, or −1
	// for "activator always in path".
	TargetBurstCapacity float64
	// ActivatorCapacity (activator-capacity) is the concurrency one activator
	// takes, for sizing activator subsets. Default 100; ≥ 1.
	ActivatorCapacity float64
	// AllowZeroInitialScale (allow-zero-initial-scale) permits initial scale
	// 0. Default false.
	AllowZeroInitialScale bool
	// InitialScale (initial-scale) is a new revision's replica count.
	// Default 1; ≥ 1, or ≥ 0 with AllowZeroInitialScale.
	InitialScale int
	// MinScale (min-scale) is the default least replica count. Default 0;
	// in [0, 2147483647] and ≤ MaxScale when MaxScale > 0.
	MinScale int
	// MaxScale (max-scale) is the default greatest replica count; 0 means
	// unbounded. Default 0; in [0, MaxScaleLimit], and ≥ 1 when
	// MaxScaleLimit > 0.
	MaxScale int
	// MaxScaleLimit (max-scale-limit) caps every max-scale; 0 means no cap.
	// Default 0; ≥ 0.
	MaxScaleLimit int
	// MaxScaleUpRate (max-scale-up-rate) bounds growth per decision.
	// Default 1000; > 1.
	MaxScaleUpRate float64
	// MaxScaleDownRate (max-scale-down-rate) bounds shrinking per decision.
	// Default 2; > 1.
	MaxScaleDownRate float64
	// StableWindow (stable-window) is the averaging window for stable
	// decisions. Default 60s; in [6s, 1h], whole seconds.
	StableWindow time.Duration
	// PanicWindowPercentage (panic-window-percentage) sizes the panic
	// window as a percentage of the stable window. Default 10; in [1, 100].
	PanicWindowPercentage float64
	// PanicThresholdPercentage (panic-threshold-percentage) is the load, as
	// a percentage of what the ready replicas can take, that starts panic
	// mode. Default 200; > 0 (Knative does not check the key; the
	// annotation must be in [110, 1000]).
	PanicThresholdPercentage float64
	// ScaleToZeroGracePeriod (scale-to-zero-grace-period) is how long the
	// activator must have been in the path before the last replica goes.
	// Default 30s; > 0.
	ScaleToZeroGracePeriod time.Duration
	// ScaleToZeroPodRetentionPeriod (scale-to-zero-pod-retention-period) is
	// how long the last replica stays after the revision went idle.
	// Default 0s; in [0s, 1h]. Knative's config takes any value ≥ 0 but
	// its annotation at most 1h; the cap here keeps the cluster default
	// within what a revision may set for itself, so that every revision
	// spec resolves.
	ScaleToZeroPodRetentionPeriod time.Duration
	// ScaleDownDelay (scale-down-delay) is how long a lower decision must
	// hold before it is applied. Default 0s; in [0s, 1h], whole seconds.
	// Knative's config takes any value ≥ 0 but its annotation at most 1h;
	// the cap here bounds the memory of each revision's delay window, which
	// keeps one slot per 2 s tick of delay (1h: 1800 slots, about 29 KB).
	ScaleDownDelay time.Duration
	// PodAutoscalerClass (pod-autoscaler-class) is the class revisions get
	// without a class annotation; this package implements only KPAClass.
	// Default "kpa.autoscaling.knative.dev".
	PodAutoscalerClass string
	// ActivationTimeout is how long a revision may stay activating (wanting
	// replicas it does not get) before it is scaled to zero. It is Knative's
	// progress deadline (config-deployment) plus 30 s, not a
	// config-autoscaler key. Default 630s; > 0.
	ActivationTimeout time.Duration
}

// DefaultConfig returns Knative's defaults (NewConfigFromMap of an empty
// map).
func DefaultConfig() Config {
	return Config{
		EnableScaleToZero:                  true,
		ContainerConcurrencyTargetFraction: 0.7,
		ContainerConcurrencyTargetDefault:  100,
		TargetUtilization:                  0.7,
		RPSTargetDefault:                   200,
		TargetBurstCapacity:                211,
		ActivatorCapacity:                  100,
		InitialScale:                       1,
		MaxScaleUpRate:                     1000,
		MaxScaleDownRate:                   2,
		StableWindow:                       60 * time.Second,
		PanicWindowPercentage:              10,
		PanicThresholdPercentage:           200,
		ScaleToZeroGracePeriod:             30 * time.Second,
		PodAutoscalerClass:                 KPAClass,
		ActivationTimeout:                  DefaultActivationTimeout,
	}
}

// Config keys (config-autoscaler).
const (
	keyEnableScaleToZero      = "enable-scale-to-zero"
	keyAllowZeroInitialScale  = "allow-zero-initial-scale"
	keyMaxScaleUpRate         = "max-scale-up-rate"
	keyMaxScaleDownRate       = "max-scale-down-rate"
	keyTargetPercentage       = "container-concurrency-target-percentage"
	keyTargetDefault          = "container-concurrency-target-default"
	keyRPSTargetDefault       = "requests-per-second-target-default"
	keyTargetBurstCapacity    = "target-burst-capacity"
	keyPanicWindowPercentage  = "panic-window-percentage"
	keyActivatorCapacity      = "activator-capacity"
	keyPanicThresholdPercent  = "panic-threshold-percentage"
	keyInitialScale           = "initial-scale"
	keyMinScale               = "min-scale"
	keyMaxScale               = "max-scale"
	keyMaxScaleLimit          = "max-scale-limit"
	keyStableWindow           = "stable-window"
	keyScaleDownDelay         = "scale-down-delay"
	keyScaleToZeroGracePeriod = "scale-to-zero-grace-period"
	keyPodRetentionPeriod     = "scale-to-zero-pod-retention-period"
	keyPodAutoscalerClass     = "pod-autoscaler-class"
)

// parser collects values and every parse problem.
type parser struct {
	data map[string]string
	errs []error
}

func (p *parser) fail(key, v, want string) {
	p.errs = append(p.errs, &FieldError{Field: key, Value: v, Want: want})
}

func (p *parser) bool(key string, dst *bool) {
	if v, ok := p.data[key]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.fail(key, v, "a boolean (true or false)")
			return
		}
		*dst = b
	}
}

func (p *parser) float(key string, dst *float64) {
	if v, ok := p.data[key]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			p.fail(key, v, "a finite number")
			return
		}
		*dst = f
	}
}

func (p *parser) int32(key string, dst *int) {
	if v, ok := p.data[key]; ok {
		i, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			p.fail(key, v, "an integer in [-2147483648, 2147483647]")
			return
		}
		*dst = int(i)
	}
}

func (p *parser) duration(key string, dst *time.Duration) {
	if v, ok := p.data[key]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.fail(key, v, `a duration such as "60s" or "1m30s"`)
			return
		}
		*dst = d
	}
}

// ParseConfig reads the data of a config-autoscaler ConfigMap: Knative's keys
// and value formats, with DefaultConfig for absent keys. Unknown keys are
// ignored (ConfigMaps carry examples and comments). It reports every value
// that does not parse and every value out of range, each as a *FieldError
// naming the key, the value and the allowed range, joined with errors.Join.
func ParseConfig(data map[string]string) (Config, error) {
	c := DefaultConfig()
	p := parser{data: data}
	if v, ok := data[keyPodAutoscalerClass]; ok {
		c.PodAutoscalerClass = v
	}
	p.bool(keyEnableScaleToZero, &c.EnableScaleToZero)
	p.bool(keyAllowZeroInitialScale, &c.AllowZeroInitialScale)
	p.float(keyMaxScaleUpRate, &c.MaxScaleUpRate)
	p.float(keyMaxScaleDownRate, &c.MaxScaleDownRate)
	p.float(keyTargetPercentage, &c.ContainerConcurrencyTargetFraction)
	p.float(keyTargetDefault, &c.ContainerConcurrencyTargetDefault)
	p.float(keyRPSTargetDefault, &c.RPSTargetDefault)
	p.float(keyTargetBurstCapacity, &c.TargetBurstCapacity)
	p.float(keyPanicWindowPercentage, &c.PanicWindowPercentage)
	p.float(keyActivatorCapacity, &c.ActivatorCapacity)
	p.float(keyPanicThresholdPercent, &c.PanicThresholdPercentage)
	p.int32(keyInitialScale, &c.InitialScale)
	p.int32(keyMinScale, &c.MinScale)
	p.int32(keyMaxScale, &c.MaxScale)
	p.int32(keyMaxScaleLimit, &c.MaxScaleLimit)
	p.duration(keyStableWindow, &c.StableWindow)
	p.duration(keyScaleDownDelay, &c.ScaleDownDelay)
	p.duration(keyScaleToZeroGracePeriod, &c.ScaleToZeroGracePeriod)
	p.duration(keyPodRetentionPeriod, &c.ScaleToZeroPodRetentionPeriod)
	// Percentages above 1 are percentages; (0, 1] is a legacy fraction.
	if c.ContainerConcurrencyTargetFraction > 1 {
		c.ContainerConcurrencyTargetFraction /= 100
	}
	if err := c.Validate(); err != nil {
		// Report values as given ("61m", not "1h1m0s").
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if fe, ok := e.(*FieldError); ok {
				if raw, ok := data[fe.Field]; ok {
					fe.Value = raw
				}
			}
			p.errs = append(p.errs, e)
		}
	}
	if err := errors.Join(p.errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every field against Knative's ranges, reporting each
// problem as a *FieldError named after its config key, joined with
// errors.Join. It is stricter than Knative in two ways: NaN and infinities
// are rejected, and scale-down-delay and scale-to-zero-pod-retention-period
// are capped at 1h as their annotations are (see the fields' docs), so that
// a valid Config resolves into a valid Spec for any valid annotations.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, v any, want string) {
		errs = append(errs, &FieldError{Field: key, Value: fmt.Sprint(v), Want: want})
	}
	finite := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

	if c.ScaleToZeroGracePeriod <= 0 {
		bad(keyScaleToZeroGracePeriod, c.ScaleToZeroGracePeriod, "a duration > 0s")
	}
	if c.ScaleDownDelay < 0 || c.ScaleDownDelay > WindowMax || c.ScaleDownDelay.Round(time.Second) != c.ScaleDownDelay {
		bad(keyScaleDownDelay, c.ScaleDownDelay, "a duration in [0s, 1h0m0s] in whole seconds")
	}
	if c.ScaleToZeroPodRetentionPeriod < 0 || c.ScaleToZeroPodRetentionPeriod > WindowMax {
		bad(keyPodRetentionPeriod, c.ScaleToZeroPodRetentionPeriod, "a duration in [0s, 1h0m0s]")
	}
	if !finite(c.TargetBurstCapacity) || (c.TargetBurstCapacity < 0 && c.TargetBurstCapacity != -1) {
		bad(keyTargetBurstCapacity, c.TargetBurstCapacity, "a number ≥ 0, or -1 (activator always in path)")
	}
	fraction := c.ContainerConcurrencyTargetFraction
	if !finite(fraction) || fraction <= 0 || fraction > 1 {
		bad(keyTargetPercentage, fraction*100, "a percentage in (0, 100] (or a fraction in (0, 1])")
	} else if x := fraction * c.ContainerConcurrencyTargetDefault; !finite(x) || x < TargetMin {
		bad(keyTargetDefault, c.ContainerConcurrencyTargetDefault,
			fmt.Sprintf("a number whose %v%% is at least %v (it yields a target of %v)", fraction*100, TargetMin, x))
	}
	if !finite(c.TargetUtilization) || c.TargetUtilization <= 0 || c.TargetUtilization > 1 {
		bad("TargetUtilization", c.TargetUtilization, "a fraction in (0, 1]")
	}
	if !finite(c.RPSTargetDefault) || c.RPSTargetDefault < TargetMin {
		bad(keyRPSTargetDefault, c.RPSTargetDefault, "a number ≥ 0.01")
	}
	if !finite(c.ActivatorCapacity) || c.ActivatorCapacity < 1 {
		bad(keyActivatorCapacity, c.ActivatorCapacity, "a number ≥ 1")
	}
	if !finite(c.MaxScaleUpRate) || c.MaxScaleUpRate <= 1 {
		bad(keyMaxScaleUpRate, c.MaxScaleUpRate, "a number > 1")
	}
	if !finite(c.MaxScaleDownRate) || c.MaxScaleDownRate <= 1 {
		bad(keyMaxScaleDownRate, c.MaxScaleDownRate, "a number > 1")
	}
	if c.StableWindow < WindowMin || c.StableWindow > WindowMax || c.StableWindow.Round(time.Second) != c.StableWindow {
		bad(keyStableWindow, c.StableWindow, "a duration in [6s, 1h0m0s] in whole seconds")
	}
	if !finite(c.PanicWindowPercentage) || c.PanicWindowPercentage < PanicWindowPercentageMin || c.PanicWindowPercentage > PanicWindowPercentageMax {
		bad(keyPanicWindowPercentage, c.PanicWindowPercentage, "a percentage in [1, 100]")
	}
	if !finite(c.PanicThresholdPercentage) || c.PanicThresholdPercentage <= 0 {
		bad(keyPanicThresholdPercent, c.PanicThresholdPercentage, "a percentage > 0")
	}
	switch {
	case c.InitialScale < 0 || c.InitialScale > math.MaxInt32:
		bad(keyInitialScale, c.InitialScale, "an integer in [0, 2147483647]")
	case c.InitialScale == 0 && !c.AllowZeroInitialScale:
		bad(keyInitialScale, c.InitialScale, "an integer ≥ 1 (0 needs allow-zero-initial-scale: true)")
	}
	if c.MinScale < 0 || c.MinScale > math.MaxInt32 {
		bad(keyMinScale, c.MinScale, "an integer in [0, 2147483647]")
	}
	if c.MaxScaleLimit < 0 || c.MaxScaleLimit > math.MaxInt32 {
		bad(keyMaxScaleLimit, c.MaxScaleLimit, "an integer in [0, 2147483647]")
	}
	switch {
	case c.MaxScaleLimit > 0 && (c.MaxScale < 1 || c.MaxScale > c.MaxScaleLimit):
		bad(keyMaxScale, c.MaxScale, fmt.Sprintf("an integer in [1, %d] (max-scale-limit)", c.MaxScaleLimit))
	case c.MaxScale < 0 || c.MaxScale > math.MaxInt32:
		bad(keyMaxScale, c.MaxScale, "an integer in [0, 2147483647] (0 = unbounded)")
	}
	if c.MaxScale > 0 && c.MinScale > c.MaxScale {
		bad(keyMinScale, c.MinScale, fmt.Sprintf("at most max-scale (%d)", c.MaxScale))
	}
	if c.ActivationTimeout <= 0 {
		bad("ActivationTimeout", c.ActivationTimeout, "a duration > 0s")
	}
	return errors.Join(errs...)
}
