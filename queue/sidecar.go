package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"

	"github.com/servingkit/servingkit/proxy"
)

// SidecarConfig configures a Handler that proxies to an application on
// another port (NewSidecar).
type SidecarConfig struct {
	Config
	// Target is the application's address, host:port (for example
	// "127.0.0.1:8080"). Required.
	Target string
	// Probe configures the readiness check of the application, used unless
	// Config.Readiness is set. Its Address defaults to Target and its Clock
	// to Config.Clock; the zero value is a TCP probe with Knative's
	// aggressive timing (see AppProbe).
	Probe AppProbeConfig
	// Transport forwards requests to the application. Nil means a transport
	// tuned for a local backend: keep-alive with up to ContainerConcurrency
	// (or 1000) idle connections, no compression, and cleartext HTTP/2 for
	// requests that arrived over HTTP/2 (gRPC).
	Transport http.RoundTripper
	// Client, if set, forwards the HTTP/1 requests that are not upgrades,
	// writing each and reading its answer on the handler's goroutine
	// (see proxy.Client); Transport then forwards the rest (upgrades, and
	// requests that arrived over HTTP/2). Nil means Transport forwards
	// every request.
	Client *proxy.Client
}

// Validate reports every invalid field of the sidecar and of its Config,
// naming the field, its value and the allowed range.
func (c SidecarConfig) Validate() error {
	errs := []error{c.Config.Validate()}
	if _, _, err := net.SplitHostPort(c.Target); err != nil {
		errs = append(errs, fmt.Errorf("queue: SidecarConfig.Target = %q, must be host:port: %v", c.Target, err))
	} else if c.Config.Readiness == nil {
		errs = append(errs, c.probeConfig().Validate())
	}
	return errors.Join(errs...)
}

func (c SidecarConfig) probeConfig() AppProbeConfig {
	p := c.Probe
	if p.Address == "" {
		p.Address = c.Target
	}
	if p.Clock == nil {
		p.Clock = c.Config.Clock
	}
	return p
}

// NewSidecar returns a Handler that forwards requests to the application at
// c.Target through a proxy.Forwarder, or an error naming each invalid
// field. Websocket upgrades, server-sent events (flushed as they come) and
// HTTP/2 streams (gRPC over h2c; serve the handler with ServerProtocols)
// pass through.
func NewSidecar(c SidecarConfig) (*Handler, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Config.Readiness == nil {
		probe, err := NewAppProbe(c.probeConfig())
		if err != nil {
			return nil, err
		}
		c.Config.Readiness = probe
	}
	transport := c.Transport
	if transport == nil {
		idle := c.ContainerConcurrency
		if idle == 0 {
			idle = 1000
		}
		transport = proxy.NewTransport(proxy.TransportConfig{MaxIdleConnsPerHost: idle})
	}
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	target := c.Target
	fwd := &proxy.Forwarder{
		Rewrite: func(pr *httputil.ProxyRequest, _ any) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			// The application sees the Host the client asked for, and the
			// client in X-Forwarded-For and Forwarded as the hops before
			// recorded it (Rewrite starts without them), with this hop's
			// client appended (AppendForwardedFor) and X-Forwarded-Host
			// and -Proto this hop's, as httputil.ProxyRequest.SetXForwarded
			// sets them.
			pr.Out.Host = pr.In.Host
			for _, k := range forwardedHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			pr.Out.Header["X-Forwarded-Host"] = []string{pr.In.Host}
			if pr.In.TLS != nil {
				pr.Out.Header["X-Forwarded-Proto"] = protoHTTPS
			} else {
				pr.Out.Header["X-Forwarded-Proto"] = protoHTTP
			}
		},
		AppendForwardedFor: true,
		Client:             c.Client,
		Transport:          transport,
		BufferPool:         &proxy.BufferPool{},
		ErrorLog:           slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error, _ any) {
			if r.Context().Err() != nil {
				// The client left, or a timeout already answered it.
				w.WriteHeader(StatusClientClosedRequest)
				return
			}
			logger.Debug("queue: proxy to application failed", "target", target, "error", err, "method", r.Method, "path", r.URL.Path)
			if errors.Is(err, context.DeadlineExceeded) {
				http.Error(w, fmt.Sprintf("queue: application at %s: %v", target, err), http.StatusGatewayTimeout)
				return
			}
			http.Error(w, fmt.Sprintf("queue: application at %s: %v", target, err), http.StatusBadGateway)
		},
	}
	return newHandler(fwd, c.Config)
}

// Shared X-Forwarded-Proto values; never written into.
var protoHTTP, protoHTTPS = []string{"http"}, []string{"https"}

// forwardedHeaders are what proxy.Forwarder removes before Rewrite.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// ServerProtocols returns the protocols the serving http.Server should
// accept for streaming to work in both modes: HTTP/1.1 (websocket upgrades)
// and cleartext HTTP/2 with prior knowledge (gRPC without TLS).
func ServerProtocols() *http.Protocols { return proxy.ServerProtocols() }
