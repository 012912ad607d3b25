// Package statuswriter remembers the status of a response as it is
// written, for the request observers of the activator and the router.
package statuswriter

import "net/http"

// Writer wraps a ResponseWriter and records the first final status (or 101)
// written through it; Status is 0 while nothing was written. Unwrap keeps
// flushing and hijacking reachable through http.ResponseController. A
// Writer is reusable: set ResponseWriter and zero Status.
type Writer struct {
	http.ResponseWriter
	Status int
}

// WriteHeader records code unless a status was already recorded; 1xx codes
// other than 101 are informational and leave it unset.
func (w *Writer) WriteHeader(code int) {
	if w.Status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records 200 when no status was written before, as net/http sends.
func (w *Writer) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped ResponseWriter.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
