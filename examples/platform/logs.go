package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// logRing keeps the last lines of a revision's replicas' output, for
// GET /logs?revision=…. Safe for simultaneous use.
type logRing struct {
	mu    sync.Mutex // protects lines and next
	lines []string   // a ring of at most max lines
	next  int        // where the next line goes once the ring is full
	max   int
}

// revisionLogLines is how many lines a revision keeps.
const revisionLogLines = 1000

// maxLogLine is the longest line kept; longer ones are cut.
const maxLogLine = 16 << 10

func newLogRing(max int) *logRing { return &logRing{max: max} }

func (l *logRing) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) < l.max {
		l.lines = append(l.lines, line)
		return
	}
	l.lines[l.next] = line
	l.next = (l.next + 1) % l.max
}

// last returns up to n of the latest lines, oldest first.
func (l *logRing) last(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := append(append([]string(nil), l.lines[l.next:]...), l.lines[:l.next]...)
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// logLine returns where a replica's output lines go: the platform's
// replica log and the revision's ring, each prefixed with the revision and
// the replica.
func (pl *pool) logLine(replica string) func(string) {
	prefix := "[" + pl.rev.key + " " + replica + "] "
	return func(line string) {
		pl.rev.logs.add(prefix + line)
		pl.p.logMu.Lock()
		_, _ = io.WriteString(pl.p.replicaLog, prefix+line+"\n")
		pl.p.logMu.Unlock()
	}
}

// readLines calls fn with each line of r, without its line ending; a line
// longer than maxLogLine is cut (and marked), never left to block the
// writer.
func readLines(r io.Reader, fn func(string)) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			kept := string(line) + " [line cut at 16 KiB]"
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			fn(kept)
		} else if len(line) > 0 {
			fn(strings.TrimRight(string(line), "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

// serveLogs answers GET /logs?revision=namespace/name[&lines=n]: the last
// lines (default 100, at most 1000) of the revision's replicas' output.
func (p *Platform) serveLogs(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("revision")
	if key == "" {
		http.Error(w, "platform: /logs needs ?revision=namespace/name", http.StatusBadRequest)
		return
	}
	n := 100
	if v := r.URL.Query().Get("lines"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > revisionLogLines {
			http.Error(w, fmt.Sprintf("platform: lines=%q, want an integer in [1, %d]", v, revisionLogLines), http.StatusBadRequest)
			return
		}
	}
	rv := p.rev(key)
	if rv == nil {
		http.Error(w, fmt.Sprintf("platform: revision %q not found", key), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, line := range rv.logs.last(n) {
		_, _ = io.WriteString(w, line+"\n")
	}
}
