package autoscaler

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Per-revision annotations (Knative's pkg/apis/autoscaling). Where Knative
// also accepts a legacy camelCase alias, the alias is read when the key
// itself is absent.
const (
	AnnotationPrefix = "autoscaling.knative.dev/"

	ClassAnnotation                         = AnnotationPrefix + "class"
	MetricAnnotation                        = AnnotationPrefix + "metric"
	TargetAnnotation                        = AnnotationPrefix + "target"
	TargetUtilizationPercentageAnnotation   = AnnotationPrefix + "target-utilization-percentage"      // alias targetUtilizationPercentage
	TargetBurstCapacityAnnotation           = AnnotationPrefix + "target-burst-capacity"              // alias targetBurstCapacity
	WindowAnnotation                        = AnnotationPrefix + "window"                             // the stable window
	PanicWindowPercentageAnnotation         = AnnotationPrefix + "panic-window-percentage"            // alias panicWindowPercentage
	PanicThresholdPercentageAnnotation      = AnnotationPrefix + "panic-threshold-percentage"         // alias panicThresholdPercentage
	MinScaleAnnotation                      = AnnotationPrefix + "min-scale"                          // alias minScale
	MaxScaleAnnotation                      = AnnotationPrefix + "max-scale"                          // alias maxScale
	InitialScaleAnnotation                  = AnnotationPrefix + "initial-scale"                      // alias initialScale
	ActivationScaleAnnotation               = AnnotationPrefix + "activation-scale"                   // least non-zero scale
	ScaleDownDelayAnnotation                = AnnotationPrefix + "scale-down-delay"                   // alias scaleDownDelay
	ScaleToZeroPodRetentionPeriodAnnotation = AnnotationPrefix + "scale-to-zero-pod-retention-period" // alias scaleToZeroPodRetentionPeriod
	MetricAggregationAlgorithmAnnotation    = AnnotationPrefix + "metric-aggregation-algorithm"       // alias metricAggregationAlgorithm

	// KPAClass is the class this package implements; HPAClass is Knative's
	// other built-in class.
	KPAClass = "kpa.autoscaling.knative.dev"
	HPAClass = "hpa.autoscaling.knative.dev"
)

// ErrNotKPA is returned (wrapped) by Config.RevisionSpec when the revision's
// class, from its annotation or the config default, is not KPAClass: some
// other autoscaler is meant to scale it.
var ErrNotKPA = errors.New("autoscaler: the revision's autoscaler class is not " + KPAClass)

// aliases maps each key to its legacy camelCase alias.
var aliases = map[string]string{
	TargetUtilizationPercentageAnnotation:   AnnotationPrefix + "targetUtilizationPercentage",
	TargetBurstCapacityAnnotation:           AnnotationPrefix + "targetBurstCapacity",
	PanicWindowPercentageAnnotation:         AnnotationPrefix + "panicWindowPercentage",
	PanicThresholdPercentageAnnotation:      AnnotationPrefix + "panicThresholdPercentage",
	MinScaleAnnotation:                      AnnotationPrefix + "minScale",
	MaxScaleAnnotation:                      AnnotationPrefix + "maxScale",
	InitialScaleAnnotation:                  AnnotationPrefix + "initialScale",
	ScaleDownDelayAnnotation:                AnnotationPrefix + "scaleDownDelay",
	ScaleToZeroPodRetentionPeriodAnnotation: AnnotationPrefix + "scaleToZeroPodRetentionPeriod",
	MetricAggregationAlgorithmAnnotation:    AnnotationPrefix + "metricAggregationAlgorithm",
}

// annotations reads one revision's annotations and collects every problem.
type annotations struct {
	m    map[string]string
	errs []error
}

// get returns the key actually present (the key, else its alias) and its
// value.
func (a *annotations) get(key string) (string, string, bool) {
	if v, ok := a.m[key]; ok {
		return key, v, true
	}
	if alias, ok := aliases[key]; ok {
		if v, ok := a.m[alias]; ok {
			return alias, v, true
		}
	}
	return key, "", false
}

func (a *annotations) fail(key, v, want string) {
	a.errs = append(a.errs, &FieldError{Field: key, Value: v, Want: want})
}

// float reads a finite number in [lo, hi]; ok is false if absent or bad.
func (a *annotations) float(key string, lo, hi float64, want string) (float64, bool) {
	k, v, ok := a.get(key)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		a.fail(k, v, want)
		return 0, false
	}
	return f, true
}

// count reads an int32 ≥ 0.
func (a *annotations) count(key string) (int, bool) {
	k, v, ok := a.get(key)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(v, 10, 32)
	if err != nil || i < 0 {
		a.fail(k, v, "an integer in [0, 2147483647]")
		return 0, false
	}
	return int(i), true
}

// duration reads a duration in [lo, hi], in whole seconds if whole.
func (a *annotations) duration(key string, lo, hi time.Duration, whole bool) (time.Duration, bool) {
	k, v, ok := a.get(key)
	if !ok {
		return 0, false
	}
	want := fmt.Sprintf("a duration in [%v, %v]", lo, hi)
	if whole {
		want += " in whole seconds"
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi || (whole && d.Truncate(time.Second) != d) {
		a.fail(k, v, want)
		return 0, false
	}
	return d, true
}

// RevisionSpec resolves one revision's Spec from the cluster config c, the
// revision's annotations and its container concurrency (0 = unlimited), as
// Knative's KPA does (ResolveMetricTarget, MakeDecider, MakeMetric,
// ScaleBounds, GetInitialScale):
//
//   - concurrency: total = containerConcurrency, or the config's target
//     default when 0; utilization = container-concurrency-target-percentage.
//   - rps: total = requests-per-second-target-default; utilization 0.7.
//   - annotation target A: total = A (for concurrency capped at
//     containerConcurrency when that is set); target-utilization-percentage
//     P: utilization = P/100. TargetValue = max(0.01, total × utilization).
//   - panic window = stable window × panic-window-percentage / 100, rounded
//     to a second, at least 1s.
//
// Annotations are validated with Knative's ranges (ValidateAnnotations);
// unlike Knative, which silently ignores an unparsable value at run time,
// every problem is an error. Each is a *FieldError naming the annotation
// (as given, alias or not) or, for an invalid c, the config key, with its
// value and the allowed range; all are joined with errors.Join. An
// annotated min-scale or max-scale that conflicts with the config's other
// bound, which Knative does not check, is an error on the annotation. A
// class other than KPAClass wraps ErrNotKPA. Unknown annotations are
// ignored.
func (c Config) RevisionSpec(annotationMap map[string]string, containerConcurrency int) (Spec, error) {
	if err := c.Validate(); err != nil {
		return Spec{}, fmt.Errorf("autoscaler: invalid config: %w", err)
	}
	a := annotations{m: annotationMap}

	class := c.PodAutoscalerClass
	if v, ok := a.m[ClassAnnotation]; ok {
		class = v
		if strings.HasSuffix(v, ".knative.dev") && v != KPAClass && v != HPAClass {
			a.fail(ClassAnnotation, v, KPAClass+" or "+HPAClass+" (or a class outside knative.dev)")
			class = KPAClass // reported already; check the rest as KPA
		}
	}
	if class != KPAClass {
		a.errs = append(a.errs, fmt.Errorf("%w: class %q", ErrNotKPA, class))
	}
	if containerConcurrency < 0 || containerConcurrency > math.MaxInt32 {
		a.fail("containerConcurrency", strconv.Itoa(containerConcurrency), "an integer in [0, 2147483647] (0 = unlimited)")
		containerConcurrency = 0
	}

	// Bounds and activation scale, checked against each other as Knative's
	// validateMinMaxScale does (annotation values only; 0 when absent).
	annMin, hasMin := a.count(MinScaleAnnotation)
	annMax, hasMax := a.count(MaxScaleAnnotation)
	if hasMax && annMax != 0 && annMax < annMin {
		k, _, _ := a.get(MaxScaleAnnotation)
		a.fail(k, strconv.Itoa(annMax), fmt.Sprintf("0 (unbounded) or at least min-scale (%d)", annMin))
	}
	if hasMax && c.MaxScaleLimit > 0 && (annMax < 1 || annMax > c.MaxScaleLimit) {
		k, _, _ := a.get(MaxScaleAnnotation)
		a.fail(k, strconv.Itoa(annMax), fmt.Sprintf("an integer in [1, %d] (max-scale-limit; 0, unbounded, is not allowed)", c.MaxScaleLimit))
	}
	activation := 0
	if k, v, ok := a.get(ActivationScaleAnnotation); ok {
		// Every failure states the whole allowed range, then why.
		lo, hi, limits := max(2, annMin), math.MaxInt32, fmt.Sprintf("≥ 2, at least min-scale (%d)", annMin)
		if annMax != 0 {
			hi, limits = annMax, limits+fmt.Sprintf(", at most max-scale (%d)", annMax)
		}
		want := fmt.Sprintf("an integer in [%d, %d] (%s)", lo, hi, limits)
		if i, err := strconv.ParseInt(v, 10, 32); err != nil || int(i) < lo || int(i) > hi {
			a.fail(k, v, want)
		} else {
			activation = int(i)
		}
	}

	percentages := fmt.Sprintf("a percentage in [%v, %v]", PanicWindowPercentageMin, PanicWindowPercentageMax)
	pwp, hasPWP := a.float(PanicWindowPercentageAnnotation, PanicWindowPercentageMin, PanicWindowPercentageMax, percentages)
	ptp, hasPTP := a.float(PanicThresholdPercentageAnnotation, PanicThresholdPercentageMin, PanicThresholdPercentageMax,
		fmt.Sprintf("a percentage in [%v, %v]", PanicThresholdPercentageMin, PanicThresholdPercentageMax))
	target, hasTarget := a.float(TargetAnnotation, TargetMin, math.MaxFloat64, "a number ≥ 0.01")
	tu, hasTU := a.float(TargetUtilizationPercentageAnnotation, 1, 100, "a percentage in [1, 100]")
	tbc, hasTBC := 0., false
	if k, v, ok := a.get(TargetBurstCapacityAnnotation); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || (f < 0 && f != -1) {
			a.fail(k, v, "a number ≥ 0, or -1 (activator always in path)")
		} else {
			tbc, hasTBC = f, true
		}
	}
	window, hasWindow := a.duration(WindowAnnotation, WindowMin, WindowMax, true)
	retention, hasRetention := a.duration(ScaleToZeroPodRetentionPeriodAnnotation, 0, WindowMax, false)
	delay, hasDelay := a.duration(ScaleDownDelayAnnotation, 0, WindowMax, true)

	metric := Concurrency
	if v, ok := a.m[MetricAnnotation]; ok {
		switch v {
		case "concurrency":
		case "rps":
			metric = RPS
		default:
			a.fail(MetricAnnotation, v, `"concurrency" or "rps"`)
		}
	}
	alg := Linear
	if k, v, ok := a.get(MetricAggregationAlgorithmAnnotation); ok {
		switch v {
		case "linear":
		case "weighted-exponential", "weightedExponential":
			alg = WeightedExponential
		default:
			a.fail(k, v, `"linear", "weighted-exponential" or "weightedExponential"`)
		}
	}
	initial := c.InitialScale
	if k, v, ok := a.get(InitialScaleAnnotation); ok {
		i, err := strconv.ParseInt(v, 10, 32)
		switch {
		case err != nil || i < 0:
			a.fail(k, v, "an integer in [0, 2147483647]")
		case i == 0 && !c.AllowZeroInitialScale:
			a.fail(k, v, "an integer ≥ 1 (0 needs allow-zero-initial-scale: true in the config)")
		default:
			initial = int(i)
		}
	}
	if len(a.errs) > 0 {
		return Spec{}, errors.Join(a.errs...)
	}

	// Resolve, as ResolveMetricTarget and MakeDecider do.
	var total, utilization float64
	switch metric {
	case RPS:
		total, utilization = c.RPSTargetDefault, c.TargetUtilization
	default:
		total, utilization = float64(containerConcurrency), c.ContainerConcurrencyTargetFraction
		if total == 0 {
			total = c.ContainerConcurrencyTargetDefault
		}
	}
	if hasTarget {
		total = target
		if metric == Concurrency && containerConcurrency != 0 {
			total = math.Min(target, float64(containerConcurrency))
		}
	}
	if hasTU {
		utilization = tu / 100
	}
	if !hasTBC {
		tbc = c.TargetBurstCapacity
	}
	if !hasPTP {
		ptp = c.PanicThresholdPercentage
	}
	if !hasWindow {
		window = c.StableWindow
	}
	if !hasPWP {
		pwp = c.PanicWindowPercentage
	}
	if !hasDelay {
		delay = c.ScaleDownDelay
	}
	if !hasRetention {
		retention = c.ScaleToZeroPodRetentionPeriod
	}
	minScale, maxScale := c.MinScale, c.MaxScale
	if hasMin {
		minScale = annMin
	}
	if hasMax {
		maxScale = annMax
	}
	// Bounds from two sources (an annotated min-scale above the config's
	// max-scale, or the reverse) pass Knative's checks, which see only the
	// annotations; reject them, naming the annotation. Both from one
	// source were checked above or by c.Validate.
	if maxScale != 0 && minScale > maxScale {
		if hasMin {
			k, v, _ := a.get(MinScaleAnnotation)
			a.fail(k, v, fmt.Sprintf("an integer in [0, %d] (at most the config's %s)", maxScale, keyMaxScale))
		} else {
			k, v, _ := a.get(MaxScaleAnnotation)
			a.fail(k, v, fmt.Sprintf("0 (unbounded) or an integer ≥ %d (at least the config's %s)", minScale, keyMinScale))
		}
		return Spec{}, errors.Join(a.errs...)
	}
	panicWindow := max(time.Duration(float64(window)*pwp/100.0).Round(time.Second), BucketSize)

	s := Spec{
		DeciderSpec: DeciderSpec{
			TargetValue:         math.Max(TargetMin, total*utilization),
			TotalValue:          total,
			TargetBurstCapacity: tbc,
			PanicThreshold:      ptp / 100.0,
			MaxScaleUpRate:      c.MaxScaleUpRate,
			MaxScaleDownRate:    c.MaxScaleDownRate,
			StableWindow:        window,
			ScaleDownDelay:      delay,
			InitialScale:        initial,
			ActivationScale:     activation,
		},
		Metric:                  metric,
		Algorithm:               alg,
		PanicWindow:             panicWindow,
		ReplicaStats:            tbc != -1,
		MinScale:                minScale,
		MaxScale:                maxScale,
		EnableScaleToZero:       c.EnableScaleToZero,
		ScaleToZeroGracePeriod:  c.ScaleToZeroGracePeriod,
		ScaleToZeroPodRetention: retention,
		ActivationTimeout:       c.ActivationTimeout,
	}
	// The checks above leave nothing for Validate to find; should a
	// combination slip through, its errors still name the settings.
	if err := s.Validate(); err != nil {
		renameFields(err, func(field string) string { return a.settingFor(field, metric) })
		return Spec{}, fmt.Errorf("autoscaler: annotations and config combine into an invalid spec: %w", err)
	}
	return s, nil
}

// settingFor names the setting a Spec field was resolved from: its
// annotation as given (alias or not), else its config key, else the field.
func (a *annotations) settingFor(field string, metric Metric) string {
	var ann, key string
	switch field {
	case "TargetValue", "TotalValue":
		ann, key = TargetAnnotation, keyTargetDefault
		if metric == RPS {
			key = keyRPSTargetDefault
		}
	case "TargetBurstCapacity":
		ann, key = TargetBurstCapacityAnnotation, keyTargetBurstCapacity
	case "PanicThreshold":
		ann, key = PanicThresholdPercentageAnnotation, keyPanicThresholdPercent
	case "MaxScaleUpRate":
		key = keyMaxScaleUpRate
	case "MaxScaleDownRate":
		key = keyMaxScaleDownRate
	case "StableWindow":
		ann, key = WindowAnnotation, keyStableWindow
	case "PanicWindow":
		ann, key = PanicWindowPercentageAnnotation, keyPanicWindowPercentage
	case "ScaleDownDelay":
		ann, key = ScaleDownDelayAnnotation, keyScaleDownDelay
	case "InitialScale":
		ann, key = InitialScaleAnnotation, keyInitialScale
	case "ActivationScale":
		ann = ActivationScaleAnnotation
	case "MinScale":
		ann, key = MinScaleAnnotation, keyMinScale
	case "MaxScale":
		ann, key = MaxScaleAnnotation, keyMaxScale
	case "ScaleToZeroGracePeriod":
		key = keyScaleToZeroGracePeriod
	case "ScaleToZeroPodRetention":
		ann, key = ScaleToZeroPodRetentionPeriodAnnotation, keyPodRetentionPeriod
	}
	if ann != "" {
		if k, _, ok := a.get(ann); ok {
			return k
		}
	}
	if key != "" {
		return key
	}
	return field
}

// renameFields renames every *FieldError in an errors.Join tree.
func renameFields(err error, rename func(string) string) {
	switch e := err.(type) {
	case *FieldError:
		e.Field = rename(e.Field)
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			renameFields(x, rename)
		}
	}
}
