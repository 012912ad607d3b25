package revision

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// MaxContainerConcurrency is the highest ContainerConcurrency Spec accepts:
// Knative's container-concurrency-max-limit default.
const MaxContainerConcurrency = 1000

// reservedEnv are the variables the platform sets itself (Knative's
// reserved names), so a template may not set them.
var reservedEnv = []string{"K_CONFIGURATION", "K_REVISION", "K_SERVICE", "PORT"}

// Spec is a ready-made Template: the fields of Knative's revision template
// that a host that runs images or in-process handlers needs. It implements
// Template[Spec], Validate, RevisionName and Clone. Two specs are Equal when
// every field is (nil and empty maps alike).
type Spec struct {
	// Name names the revision; empty means "<configuration>-NNNNN". It must
	// start with "<configuration>-" (checked by Configuration.Apply).
	Name string
	// Image is the container image to run. Exactly one of Image and Handler
	// must be set.
	Image string
	// Handler names an in-process handler (or any runnable the host knows)
	// instead of an image.
	Handler string
	// Env is the environment. Names must be non-empty, without '=' or NUL,
	// and not reserved (PORT, K_SERVICE, K_CONFIGURATION, K_REVISION).
	Env map[string]string
	// ContainerConcurrency caps the requests one replica serves at once.
	// Zero means unlimited; range 0 to MaxContainerConcurrency (1000).
	ContainerConcurrency int
	// Timeout bounds a request's whole duration. Zero means the host's
	// default (Knative's is 300 s); it must not be negative.
	Timeout time.Duration
	// ResponseStartTimeout bounds the wait for the first response byte.
	// Zero means none; it must not be negative nor exceed a non-zero
	// Timeout.
	ResponseStartTimeout time.Duration
	// IdleTimeout bounds the gap between response bytes. Zero means none;
	// it must not be negative nor exceed a non-zero Timeout.
	IdleTimeout time.Duration
	// Annotations carry the rest, e.g. autoscaling.knative.dev/* for the
	// autoscaler. Keys must not be empty; values are not interpreted here.
	Annotations map[string]string
}

// Equal reports whether s and o make the same revision.
func (s Spec) Equal(o Spec) bool {
	return s.Name == o.Name && s.Image == o.Image && s.Handler == o.Handler &&
		s.ContainerConcurrency == o.ContainerConcurrency && s.Timeout == o.Timeout &&
		s.ResponseStartTimeout == o.ResponseStartTimeout && s.IdleTimeout == o.IdleTimeout &&
		maps.Equal(s.Env, o.Env) && maps.Equal(s.Annotations, o.Annotations)
}

// RevisionName returns s.Name.
func (s Spec) RevisionName() string { return s.Name }

// Clone returns s with copies of its maps, so that Configuration.Apply keeps
// a revision's template apart from the caller's maps.
func (s Spec) Clone() Spec {
	s.Env = maps.Clone(s.Env)
	s.Annotations = maps.Clone(s.Annotations)
	return s
}

// Validate reports every problem with s, joined, each naming the field, the
// value and the allowed range. The name is checked by Configuration.Apply,
// which knows the required prefix.
func (s Spec) Validate() error {
	var errs []error
	switch {
	case s.Image == "" && s.Handler == "":
		errs = append(errs, errors.New("revision: Spec.Image and Spec.Handler are both empty, exactly one must be set"))
	case s.Image != "" && s.Handler != "":
		errs = append(errs, fmt.Errorf("revision: Spec.Image = %q and Spec.Handler = %q are both set, exactly one must be set", s.Image, s.Handler))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		switch {
		case k == "":
			errs = append(errs, errors.New("revision: Spec.Env has an empty name, names must be non-empty"))
		case strings.ContainsAny(k, "=\x00"):
			errs = append(errs, fmt.Errorf("revision: Spec.Env name %q contains '=' or NUL, which names cannot hold", k))
		case slices.Contains(reservedEnv, k):
			errs = append(errs, fmt.Errorf("revision: Spec.Env name %q is reserved, must not be one of %v", k, reservedEnv))
		}
	}
	if s.ContainerConcurrency < 0 || s.ContainerConcurrency > MaxContainerConcurrency {
		errs = append(errs, fmt.Errorf("revision: Spec.ContainerConcurrency = %d, must be in [0, %d] (0 means unlimited)",
			s.ContainerConcurrency, MaxContainerConcurrency))
	}
	if s.Timeout < 0 {
		errs = append(errs, fmt.Errorf("revision: Spec.Timeout = %v, must be >= 0 (0 means the host's default)", s.Timeout))
	}
	for _, t := range []struct {
		name string
		v    time.Duration
	}{{"ResponseStartTimeout", s.ResponseStartTimeout}, {"IdleTimeout", s.IdleTimeout}} {
		switch {
		case t.v < 0:
			errs = append(errs, fmt.Errorf("revision: Spec.%s = %v, must be >= 0 (0 means none)", t.name, t.v))
		case s.Timeout > 0 && t.v > s.Timeout:
			errs = append(errs, fmt.Errorf("revision: Spec.%s = %v, must be <= Spec.Timeout = %v", t.name, t.v, s.Timeout))
		}
	}
	if _, ok := s.Annotations[""]; ok {
		errs = append(errs, errors.New("revision: Spec.Annotations has an empty key, keys must be non-empty"))
	}
	return errors.Join(errs...)
}
