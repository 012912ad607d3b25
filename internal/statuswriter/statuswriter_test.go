package statuswriter

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWriterRecordsFirstFinalStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
		want  int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 0},
		{"body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, http.StatusOK},
		{"explicit", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, http.StatusTeapot},
		{"103 then 404", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusNotFound)
		}, http.StatusNotFound},
		{"101", func(w http.ResponseWriter) { w.WriteHeader(http.StatusSwitchingProtocols) }, http.StatusSwitchingProtocols},
		{"second status ignored", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte("x"))
		}, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := &Writer{ResponseWriter: rec}
			tc.write(w)
			if w.Status != tc.want {
				t.Fatalf("Status = %d, want %d", w.Status, tc.want)
			}
			if w.Unwrap() != rec {
				t.Fatal("Unwrap does not return the wrapped writer")
			}
		})
	}
}
