package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/servingkit/servingkit/revision"
)

// The container spec of a manifest runs a program of the user's: command,
// args, env, workingDir, one port and the probes, as Kubernetes and Knative
// define them. A container without command runs a built-in demo app chosen
// by its image (AppForImage).

// ContainerPort is one entry of a container's ports.
type ContainerPort struct {
	Name          string `json:"name"`
	ContainerPort int64  `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// Probe is a Kubernetes probe: one of HTTPGet, TCPSocket and Exec, and its
// timing.
type Probe struct {
	HTTPGet             *HTTPGetAction   `json:"httpGet"`
	TCPSocket           *TCPSocketAction `json:"tcpSocket"`
	Exec                *ExecAction      `json:"exec"`
	InitialDelaySeconds *int64           `json:"initialDelaySeconds"`
	PeriodSeconds       *int64           `json:"periodSeconds"`
	TimeoutSeconds      *int64           `json:"timeoutSeconds"`
	SuccessThreshold    *int64           `json:"successThreshold"`
	FailureThreshold    *int64           `json:"failureThreshold"`
}

// HTTPGetAction is a probe's httpGet.
type HTTPGetAction struct {
	Path        string       `json:"path"`
	Port        IntOrString  `json:"port"`
	Host        string       `json:"host"`
	Scheme      string       `json:"scheme"`
	HTTPHeaders []HTTPHeader `json:"httpHeaders"`
}

// HTTPHeader is one header of an httpGet probe.
type HTTPHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketAction is a probe's tcpSocket.
type TCPSocketAction struct {
	Port IntOrString `json:"port"`
	Host string      `json:"host"`
}

// ExecAction is a probe's exec.
type ExecAction struct {
	Command []string `json:"command"`
}

// IntOrString is a port given as a number or as the name of a container
// port, as in Kubernetes.
type IntOrString struct {
	Int int64
	Str string
	Set bool
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.Set = true
		return json.Unmarshal(b, &v.Str)
	}
	if string(b) == "null" {
		return nil
	}
	v.Set = true
	return json.Unmarshal(b, &v.Int)
}

func (v IntOrString) String() string {
	if v.Str != "" {
		return strconv.Quote(v.Str)
	}
	return strconv.FormatInt(v.Int, 10)
}

// Knative's defaults and limits for the runtime contract.
const (
	// defaultContainerPort is the port a container without ports is
	// expected on (Knative's default, 8080).
	defaultContainerPort = 8080
	// DefaultTerminationGrace is Kubernetes' terminationGracePeriodSeconds
	// default: how long a program has between SIGTERM and SIGKILL.
	DefaultTerminationGrace = 30 * time.Second
)

// reservedEnv are the variables the platform sets for a program (Knative's
// runtime contract); a manifest may not set them.
var reservedEnv = []string{"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}

// reservedPorts are the queue's ports in Knative; a container may not use
// them.
var reservedPorts = []int64{8008, 8012, 8013, 8022, 9090, 9091}

// ContainerSpec is a user program resolved from a container: what a replica
// needs to start and check it. Ports are those the manifest names; the
// program is told the port it must listen on in $PORT.
type ContainerSpec struct {
	Command    []string `json:"command"`
	Args       []string `json:"args,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	// Env is the manifest's env, in its order (a value may refer to the
	// variables before it, see programEnv).
	Env []EnvVar `json:"env,omitempty"`
	// Port is ports[0].containerPort, or 8080. Probes on it (or on its
	// name) check the program's real port.
	Port int `json:"port"`
	// H2C says the program speaks cleartext HTTP/2 (ports[0].name h2c);
	// otherwise requests reach it over HTTP/1.1.
	H2C       bool       `json:"h2c,omitempty"`
	Readiness *ProbeSpec `json:"readiness,omitempty"`
	Liveness  *ProbeSpec `json:"liveness,omitempty"`
	// Startup, if set, holds the readiness and liveness checks back until
	// it passes once; failing FailureThreshold times in a row restarts the
	// program.
	Startup *ProbeSpec `json:"startup,omitempty"`
}

// Equal reports whether two container specs run the same program.
func (c *ContainerSpec) Equal(o *ContainerSpec) bool {
	if c == nil || o == nil {
		return c == o
	}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(o)
	return string(a) == string(b)
}

// ProbeSpec is a resolved probe with Kubernetes' defaults filled in.
type ProbeSpec struct {
	// Kind is "http", "tcp" or "exec".
	Kind    string     `json:"kind"`
	Path    string     `json:"path,omitempty"`
	Host    string     `json:"host,omitempty"`
	Headers [][]string `json:"headers,omitempty"`
	// Port is the port to check; 0 means the program's $PORT.
	Port    int      `json:"port,omitempty"`
	Command []string `json:"command,omitempty"`

	InitialDelay     time.Duration `json:"initialDelay"`
	Period           time.Duration `json:"period"`
	Timeout          time.Duration `json:"timeout"`
	SuccessThreshold int           `json:"successThreshold"`
	FailureThreshold int           `json:"failureThreshold"`
	// Aggressive probes often until the first success (Knative's readiness
	// probe without periodSeconds: every 50 ms; see prober.run and
	// startupGap), then every Period.
	Aggressive bool `json:"aggressive,omitempty"`
}

// Describe names the probe for messages: "httpGet :8080/healthz".
func (p *ProbeSpec) Describe(port int) string {
	if p.Port != 0 {
		port = p.Port
	}
	switch p.Kind {
	case "http":
		return fmt.Sprintf("httpGet %s:%d%s", cmpOr(p.Host, "127.0.0.1"), port, p.Path)
	case "tcp":
		return fmt.Sprintf("tcpSocket %s:%d", cmpOr(p.Host, "127.0.0.1"), port)
	}
	return fmt.Sprintf("exec %q", p.Command)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// resolveContainer checks a container and resolves it: a nil spec for a
// built-in app (no command), or the program to run. Every problem is
// reported, each naming its field (at is the container's path).
func resolveContainer(c Container, at string) (*ContainerSpec, error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("manifest: %s.%s: %s", at, field, fmt.Sprintf(format, args...)))
	}
	for i, e := range c.Env {
		switch {
		case e.Name == "":
			fail(fmt.Sprintf("env[%d].name", i), "must not be empty")
		case slices.Contains(reservedEnv, e.Name):
			fail(fmt.Sprintf("env[%d].name", i), "%q is a reserved environment variable (the platform sets %s)", e.Name, strings.Join(reservedEnv, ", "))
		case strings.ContainsAny(e.Name, "=\x00"):
			fail(fmt.Sprintf("env[%d].name", i), "%q must not contain '=' or NUL", e.Name)
		}
	}
	if c.Name == "queue-proxy" {
		fail("name", "%q is reserved for the queue", c.Name)
	}
	port, portName := int64(defaultContainerPort), ""
	switch len(c.Ports) {
	case 0:
	case 1:
		p := c.Ports[0]
		switch {
		case p.ContainerPort == 0:
		case p.ContainerPort < 1 || p.ContainerPort > 65535:
			fail("ports[0].containerPort", "%d must be in [1, 65535]", p.ContainerPort)
		case slices.Contains(reservedPorts, p.ContainerPort):
			fail("ports[0].containerPort", "%d is reserved for the queue (reserved: %v)", p.ContainerPort, reservedPorts)
		default:
			port = p.ContainerPort
		}
		if p.Name != "" && p.Name != "h2c" && p.Name != "http1" {
			fail("ports[0].name", "%q must be \"h2c\", \"http1\" or empty (the name selects the protocol)", p.Name)
		}
		if p.Protocol != "" && p.Protocol != "TCP" {
			fail("ports[0].protocol", "%q must be TCP", p.Protocol)
		}
		portName = p.Name
	default:
		fail("ports", "has %d ports; a container exposes at most one", len(c.Ports))
	}

	if len(c.Command) == 0 {
		if len(c.Args) > 0 || c.WorkingDir != "" || c.ReadinessProbe != nil || c.LivenessProbe != nil || c.StartupProbe != nil {
			fail("command", "required when args, workingDir or probes are set (a container without command runs a built-in demo app)")
		} else if _, err := AppForImage(c.Image); err != nil {
			fail("command", "required: image %q is not a built-in demo app (an image named like helloworld-go or autoscale-go); set command to the program to run", c.Image)
		}
		return nil, errors.Join(errs...)
	}
	if c.Command[0] == "" {
		fail("command[0]", "must not be empty")
	}
	if c.WorkingDir != "" {
		if fi, err := os.Stat(c.WorkingDir); err != nil {
			fail("workingDir", "%q: %v", c.WorkingDir, err)
		} else if !fi.IsDir() {
			fail("workingDir", "%q is not a directory", c.WorkingDir)
		}
	}
	spec := &ContainerSpec{
		Command: slices.Clone(c.Command), Args: slices.Clone(c.Args),
		Env:  slices.Clone(c.Env),
		Port: int(port), H2C: portName == "h2c",
	}
	if c.WorkingDir != "" {
		if abs, err := filepath.Abs(c.WorkingDir); err == nil {
			spec.WorkingDir = abs
		}
	}
	var err error
	if c.ReadinessProbe != nil {
		if spec.Readiness, err = resolveProbe(*c.ReadinessProbe, at+".readinessProbe", port, portName, probeReadiness); err != nil {
			errs = append(errs, err)
		}
	}
	if c.LivenessProbe != nil {
		if spec.Liveness, err = resolveProbe(*c.LivenessProbe, at+".livenessProbe", port, portName, probeLiveness); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StartupProbe != nil {
		if spec.Startup, err = resolveProbe(*c.StartupProbe, at+".startupProbe", port, portName, probeStartup); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return spec, nil
}

// probeKind is which of a container's probes is resolved.
type probeKind int

const (
	probeReadiness probeKind = iota
	probeLiveness
	probeStartup
)

// resolveProbe checks a probe and fills Kubernetes' defaults:
// initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1,
// successThreshold 1, failureThreshold 3. A readiness probe without
// periodSeconds probes aggressively until the first success, as Knative's
// queue does. Liveness and startup probes must have successThreshold 1.
func resolveProbe(p Probe, at string, port int64, portName string, kind probeKind) (*ProbeSpec, error) {
	readiness := kind == probeReadiness
	var errs []error
	fail := func(field, format string, args ...any) {
		path := at
		if field != "" {
			path += "." + field
		}
		errs = append(errs, fmt.Errorf("manifest: %s: %s", path, fmt.Sprintf(format, args...)))
	}
	ps := &ProbeSpec{}
	resolvePort := func(field string, v IntOrString) {
		switch {
		case !v.Set || (v.Str == "" && v.Int == 0):
		case v.Str != "":
			if portName == "" || v.Str != portName {
				fail(field, "%q names no port of the container (its port is %s)", v.Str, cmpOr(strconv.Quote(portName), "unnamed"))
			}
		case v.Int < 1 || v.Int > 65535:
			fail(field, "%d must be in [1, 65535]", v.Int)
		case v.Int != port:
			// Another port than the container's: probed as given.
			ps.Port = int(v.Int)
		}
	}
	handlers := 0
	if h := p.HTTPGet; h != nil {
		handlers++
		ps.Kind = "http"
		ps.Path = cmpOr(h.Path, "/")
		if !strings.HasPrefix(ps.Path, "/") {
			fail("httpGet.path", "%q must start with /", h.Path)
		}
		if h.Scheme != "" && !strings.EqualFold(h.Scheme, "HTTP") {
			fail("httpGet.scheme", "%q: only HTTP is supported", h.Scheme)
		}
		ps.Host = h.Host
		for i, hd := range h.HTTPHeaders {
			if hd.Name == "" {
				fail(fmt.Sprintf("httpGet.httpHeaders[%d].name", i), "must not be empty")
			}
			ps.Headers = append(ps.Headers, []string{hd.Name, hd.Value})
		}
		resolvePort("httpGet.port", h.Port)
	}
	if t := p.TCPSocket; t != nil {
		handlers++
		ps.Kind = "tcp"
		ps.Host = t.Host
		resolvePort("tcpSocket.port", t.Port)
	}
	if e := p.Exec; e != nil {
		handlers++
		ps.Kind = "exec"
		if len(e.Command) == 0 || e.Command[0] == "" {
			fail("exec.command", "must name a command")
		}
		ps.Command = slices.Clone(e.Command)
	}
	if handlers != 1 {
		fail("", "must have exactly one of httpGet, tcpSocket and exec, has %d", handlers)
	}
	seconds := func(field string, v *int64, def, lo int64) time.Duration {
		if v == nil {
			return time.Duration(def) * time.Second
		}
		if *v < lo || *v > 3600 {
			fail(field, "%d must be in [%d, 3600]", *v, lo)
		}
		return time.Duration(*v) * time.Second
	}
	count := func(field string, v *int64, def int64) int {
		if v == nil || *v == 0 {
			return int(def)
		}
		if *v < 1 || *v > 1000 {
			fail(field, "%d must be in [1, 1000]", *v)
		}
		return int(*v)
	}
	ps.InitialDelay = seconds("initialDelaySeconds", p.InitialDelaySeconds, 0, 0)
	ps.Period = seconds("periodSeconds", p.PeriodSeconds, 10, 0)
	if ps.Period == 0 {
		ps.Period = 10 * time.Second
	}
	ps.Aggressive = readiness && (p.PeriodSeconds == nil || *p.PeriodSeconds == 0)
	ps.Timeout = seconds("timeoutSeconds", p.TimeoutSeconds, 1, 0)
	if ps.Timeout == 0 {
		ps.Timeout = time.Second
	}
	ps.SuccessThreshold = count("successThreshold", p.SuccessThreshold, 1)
	ps.FailureThreshold = count("failureThreshold", p.FailureThreshold, 3)
	if !readiness && ps.SuccessThreshold != 1 {
		fail("successThreshold", "%d must be 1 for a %s probe", ps.SuccessThreshold, map[probeKind]string{probeLiveness: "liveness", probeStartup: "startup"}[kind])
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ps, nil
}

// containerPaths are the container fields container.go reads (see
// supported in manifest.go).
var containerPaths = func() []string {
	c := "spec.template.spec.containers[]."
	var out []string
	for _, f := range []string{"command[]", "args[]", "workingDir",
		"ports[].name", "ports[].containerPort", "ports[].protocol"} {
		out = append(out, c+f)
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
		for _, f := range []string{".httpGet.path", ".httpGet.port", ".httpGet.host",
			".httpGet.scheme", ".httpGet.httpHeaders[].name", ".httpGet.httpHeaders[].value",
			".tcpSocket.port", ".tcpSocket.host", ".exec.command[]",
			".initialDelaySeconds", ".periodSeconds", ".timeoutSeconds", ".successThreshold", ".failureThreshold"} {
			out = append(out, c+probe+f)
		}
	}
	return out
}()

// template is a revision's template on this platform: Knative's revision
// fields (revision.Spec) plus the program to run, if any.
type template struct {
	revision.Spec
	// Container is the user's program; nil runs the built-in app of
	// Spec.Image.
	Container *ContainerSpec
	// Grace is terminationGracePeriodSeconds: SIGTERM to SIGKILL.
	Grace time.Duration
}

// Equal reports whether t and o make the same revision.
func (t template) Equal(o template) bool {
	return t.Spec.Equal(o.Spec) && t.Container.Equal(o.Container) && t.Grace == o.Grace
}

// Validate checks the revision fields (the container was checked when the
// manifest was read).
func (t template) Validate() error { return t.Spec.Validate() }

// RevisionName names the revision, or "" for a generated name.
func (t template) RevisionName() string { return t.Spec.Name }

// Clone copies the maps and slices, so the revision keeps its own.
func (t template) Clone() template {
	t.Spec = t.Spec.Clone()
	if t.Container != nil {
		c := *t.Container
		c.Command, c.Args, c.Env = slices.Clone(c.Command), slices.Clone(c.Args), slices.Clone(c.Env)
		t.Container = &c
	}
	return t
}

// expandVars replaces $(NAME) in s with vars[NAME], as Kubernetes does in
// command and args: $$ is a literal $, and a reference to an unknown
// variable is left as written.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
