package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the Client's HTTP/1.1 exchange. A response the backend framed
// badly is refused (the Forwarder answers 502 before anything reaches the
// client, or aborts the client's response when the status is out) and
// its connection is closed.
var (
	errHeaderTimeout  = errors.New("proxy: timeout awaiting response headers")
	errHeaderTooLarge = errors.New("proxy: response header block larger than Client.MaxResponseHeaderBytes")
	errBareCR         = errors.New("proxy: malformed response: CR not followed by LF")
	errObsFold        = errors.New("proxy: malformed response: obsolete line folding (obs-fold)")
	errCLandTE        = errors.New("proxy: malformed response: both Content-Length and Transfer-Encoding (possible response smuggling)")
	errBadChunk       = errors.New("proxy: malformed chunked encoding in the response")
	errSwitched       = errors.New("proxy: backend switched protocols without an upgrade request")
	errTooMany1xx     = errors.New("proxy: more than 10 informational (1xx) responses")
)

// inlineBodyMax is the largest request body of known length written on
// the handler's goroutine before the response is read. Larger bodies, and
// those of unknown length, are written by a goroutine of their own while
// the response is read, so a backend that answers while it reads (full
// duplex) cannot deadlock the exchange.
const inlineBodyMax = 64 << 10

// maxWriteWait is how long a connection whose response is complete waits
// for its request body's writer before it is given up.
const maxWriteWait = 50 * time.Millisecond

// maxFinalWriteWait is maxWriteWait once the request body was read to its
// end.
const maxFinalWriteWait = 5 * time.Second

// max1xx bounds the informational responses before a final one.
const max1xx = 10

// maxChunkLine bounds a chunk-size line (with its extensions).
const maxChunkLine = 4096

type span struct{ start, end int32 }

type field struct{ k, v span }

// exchange is one request's trip over a Client's connection: its buffers
// and the response's framing. Pooled.
type exchange struct {
	c    *Client
	pc   *conn
	br   *bufio.Reader
	bw   *bufio.Writer
	w    http.ResponseWriter // for 1xx responses
	stop func() bool         // the context.AfterFunc's; nil when none

	// The response.
	status    int
	length    int64 // remaining body bytes when length-framed; -1 when not
	chunked   bool
	toEOF     bool // read to EOF: the connection is not reused
	reuse     bool // the connection may take another request after this one
	done      bool // the body was read to its end
	gotByte   bool // a byte of a response arrived
	chunkLeft int64
	midChunk  bool // chunk data was read: CRLF is due before the next size
	trailers  http.Header
	announced []string // the Trailer header's values

	// Header parsing.
	budget  int
	line    []byte
	scratch []byte
	fields  []field
	conn    []span // the Connection header's values
	tes     int    // Transfer-Encoding fields seen
	cl      int64  // Content-Length; -1 when absent

	// The request body writer goroutine, when there is one.
	writing bool
	wdone   chan error
	bodyEOF atomic.Bool                   // the writer read the request body to its end
	bodyErr atomic.Pointer[bodyReadError] // the writer could not read the request body
}

var exchangePool = sync.Pool{New: func() any {
	e := &exchange{br: bufio.NewReaderSize(nil, 4096), bw: bufio.NewWriterSize(nil, 4096), wdone: make(chan error, 1)}
	e.reset()
	return e
}}

func (e *exchange) reset() {
	e.w, e.stop = nil, nil
	e.status, e.length, e.chunked, e.toEOF, e.reuse, e.done, e.gotByte = 0, -1, false, false, true, false, false
	e.chunkLeft, e.midChunk, e.trailers = 0, false, nil
	clear(e.announced)
	e.announced = e.announced[:0]
	e.writing = false
	if cap(e.line) > 64<<10 {
		e.line = nil
	}
	if cap(e.scratch) > 64<<10 {
		e.scratch = nil
	}
	// A header block of many tiny fields grows these as much as scratch:
	// a pooled exchange keeps no more than a usual response needs.
	if cap(e.fields) > 1024 {
		e.fields = nil
	}
	if cap(e.conn) > 64 {
		e.conn = nil
	}
	if cap(e.announced) > 64 {
		e.announced = nil
	}
}

// attach puts the exchange on pc, closing it if ctx ends.
func (e *exchange) attach(ctx context.Context, pc *conn) {
	e.pc = pc
	e.br.Reset(pc.c)
	e.bw.Reset(pc.c)
	e.stop = nil
	if ctx.Done() != nil {
		e.stop = context.AfterFunc(ctx, pc.closeFn)
	}
}

// detach ends the exchange's use of its connection: back to the pool when
// the response was read to its end and nothing else is pending, closed
// otherwise. It reports whether the exchange itself can be pooled (no
// body writer still uses its buffers).
func (e *exchange) detach() bool {
	pc := e.pc
	if pc == nil {
		return !e.writing
	}
	e.pc = nil
	ok := e.reuse && e.done && !pc.closed && e.br.Buffered() == 0
	if e.stop != nil && !e.stop() {
		ok = false // the context ended: the socket is closed, or about to be
	}
	e.stop = nil
	poolable := true
	if e.writing {
		var err error
		select {
		case err = <-e.wdone:
			e.writing = false
		default:
			if ok {
				// The response is complete; the body's last bytes may still
				// be on their way out (as http.Transport, wait a little,
				// and longer when the body was read to its end: only
				// writes to the backend are left).
				d := maxWriteWait
				if e.bodyEOF.Load() {
					d = maxFinalWriteWait
				}
				t := time.NewTimer(d)
				select {
				case err = <-e.wdone:
					e.writing = false
				case <-t.C:
				}
				t.Stop()
			}
		}
		if e.writing || err != nil {
			// The request did not end cleanly. A writer still running keeps
			// the exchange's buffers: it is not pooled, and closing the
			// connection ends its writes.
			ok = false
			poolable = !e.writing
		}
	}
	e.br.Reset(nil)
	if poolable {
		e.bw.Reset(nil)
	}
	if ok {
		pc.client.put(pc)
	} else {
		pc.discard()
	}
	return poolable
}

func putExchange(e *exchange) {
	if e.detach() {
		e.reset()
		exchangePool.Put(e)
	}
}

// roundTrip writes out and reads the response's head: its fields into dst
// (1xx responses are passed on through w). A request that failed on a
// reused connection before any byte of a response came back and before
// any of its body was read is sent once more on a new connection; a dial
// failure is returned as it came (a *net.OpError whose Op is "dial").
func (e *exchange) roundTrip(ctx context.Context, c *Client, out *http.Request, dst http.Header, w http.ResponseWriter) error {
	e.c, e.w = c, w
	addr := out.URL.Host
	if addr == "" {
		return errors.New("proxy: no host in the outbound request's URL")
	}
	if !hasPort(addr) {
		addr = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), "80")
	}
	hasBody := out.Body != nil && out.Body != http.NoBody
	for attempt := 0; ; attempt++ {
		pc, reused, err := c.get(ctx, addr, attempt > 0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // not the replica's failure
			}
			return err
		}
		e.attach(ctx, pc)
		err = e.send(out, hasBody, dst)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt > 0 || !reused || e.gotByte || hasBody || !replayable(out) || errors.Is(err, errHeaderTimeout) {
			return err // the caller's putExchange ends the exchange
		}
		e.detach() // no body: no writer
		e.reset()
		e.c, e.w = c, w
	}
}

// replayable reports whether a bodiless request may be sent again after a
// reused connection failed before any byte of a response came back: the
// backend may have read it and acted on it before the connection went, so
// only methods whose repetition is harmless qualify, and requests that say
// so with an idempotency key (http.Transport's rule).
func replayable(out *http.Request) bool {
	switch out.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return out.Header["Idempotency-Key"] != nil || out.Header["X-Idempotency-Key"] != nil
}

func hasPort(hostport string) bool {
	i := strings.LastIndexByte(hostport, ':')
	return i >= 0 && i > strings.LastIndexByte(hostport, ']')
}

// send writes the request (its body inline, or by a goroutine of its own)
// and reads the response head.
func (e *exchange) send(out *http.Request, hasBody bool, dst http.Header) error {
	length := int64(-1) // chunked
	switch {
	case !hasBody:
		length = 0
	case out.ContentLength > 0 && len(out.Trailer) == 0:
		length = out.ContentLength
	}
	if out.Close {
		e.reuse = false
	}
	if err := e.writeHead(out, hasBody, length); err != nil {
		return err
	}
	if !hasBody {
		if err := e.bw.Flush(); err != nil {
			return err
		}
		return e.readHead(out, dst, false)
	}
	if hasToken(out.Header["Expect"], "100-continue") {
		if err := e.bw.Flush(); err != nil {
			return err
		}
		got100, err := e.awaitContinue(out, dst)
		if err != nil {
			return err
		}
		if !got100 && e.status != 0 {
			// The final response came first: the body is not sent, and
			// the backend would read whatever comes next as its body.
			e.reuse = false
			return nil
		}
	}
	if length >= 0 && length <= inlineBodyMax {
		werr := writeBody(e.bw, out, length, nil)
		if werr == nil {
			werr = e.bw.Flush()
		}
		if werr != nil {
			var be *bodyReadError
			if errors.As(werr, &be) {
				return werr
			}
			// The backend may have answered and stopped reading: prefer
			// its response.
			e.reuse = false
			if err := e.readHead(out, dst, false); err == nil {
				return nil
			}
			return werr
		}
		return e.readHead(out, dst, false)
	}
	e.writing = true
	e.bodyEOF.Store(false)
	e.bodyErr.Store(nil)
	go e.writeBodyAsync(out, length, e.bw, e.pc.c)
	if err := e.readHead(out, dst, false); err != nil {
		if be := e.bodyErr.Load(); be != nil {
			// The writer cut the connection off: the request body failed,
			// not the backend.
			return be
		}
		return err
	}
	return nil
}

// awaitContinue waits up to ExpectContinueTimeout for the backend's answer
// to "Expect: 100-continue": a 100 (true), a final response (false, status
// set), or nothing in time (false, status 0): the body is sent anyway.
func (e *exchange) awaitContinue(out *http.Request, dst http.Header) (bool, error) {
	d := e.c.ExpectContinueTimeout
	if d == 0 {
		d = defaultExpectContinue
	}
	_ = e.pc.c.SetReadDeadline(time.Now().Add(d))
	_, err := e.br.Peek(1)
	_ = e.pc.c.SetReadDeadline(time.Time{})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, nil
		}
		return false, err
	}
	if err := e.readHead(out, dst, true); err != nil {
		return false, err
	}
	return e.status == 0, nil
}

// bodyReadError is a failure to read the inbound request body (the client
// went away, or sent a malformed body): the upstream request is cut off.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "proxy: reading the request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// writeBodyAsync is writeBody on a goroutine of its own; it touches only
// its arguments and e.wdone, since the exchange may end before it does.
func (e *exchange) writeBodyAsync(out *http.Request, length int64, bw *bufio.Writer, nc net.Conn) {
	err := writeBody(bw, out, length, &e.bodyEOF)
	if err == nil {
		err = bw.Flush()
	}
	if be, ok := err.(*bodyReadError); ok {
		e.bodyErr.Store(be) // before the close that fails the response side
	}
	if err != nil {
		// Cut the request off, so the backend never takes a partial body
		// for a whole one, and the response side fails too.
		nc.Close()
	}
	e.wdone <- err
}

// writeBody copies the request body: length bytes, or chunked when length
// is -1, with the trailers after the last chunk.
func writeBody(bw *bufio.Writer, out *http.Request, length int64, eof *atomic.Bool) error {
	buf := bodyBufs.Get()
	defer bodyBufs.Put(buf)
	var sent int64
	probe := buf[len(buf)-1:] // never read into by the copy
	for {
		if length >= 0 && sent == length {
			break
		}
		p := buf[:len(buf)-1]
		if length >= 0 && int64(len(p)) > length-sent {
			p = p[:length-sent]
		}
		n, rerr := out.Body.Read(p)
		if length >= 0 && sent+int64(n) == length && rerr == nil {
			// The last bytes: before they go out, make sure the body ends
			// here, or the backend would take its head for all of it.
			// (net/http's request bodies say io.EOF with their last bytes.)
			var m int
			m, rerr = out.Body.Read(probe)
			if m > 0 {
				return &bodyReadError{fmt.Errorf("body longer than its ContentLength %d", length)}
			}
			if rerr != nil && rerr != io.EOF {
				n = 0 // cut off below, before the last bytes
			}
		}
		if n > 0 {
			sent += int64(n)
			if length < 0 {
				bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
				bw.WriteString("\r\n")
			}
			if _, err := bw.Write(p[:n]); err != nil {
				return err
			}
			if length < 0 {
				if _, err := bw.WriteString("\r\n"); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			if length >= 0 && sent < length {
				return &bodyReadError{io.ErrUnexpectedEOF}
			}
			break
		}
		if rerr != nil {
			return &bodyReadError{rerr} // the caller cuts the connection off
		}
	}
	if eof != nil {
		eof.Store(true)
	}
	if length >= 0 {
		return nil
	}
	bw.WriteString("0\r\n")
	for k, vv := range out.Trailer {
		if err := writeField(bw, k, vv, "request trailer"); err != nil {
			return err
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// bodyBufs are the request body copy buffers.
var bodyBufs BufferPool

// writeHead writes the request line and header. The framing is the
// client's own (Content-Length or chunked), never a copied header.
func (e *exchange) writeHead(out *http.Request, hasBody bool, length int64) error {
	bw := e.bw
	method := out.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validFieldName(method) {
		return fmt.Errorf("proxy: invalid method %q", method)
	}
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	if !validHost(host) {
		return fmt.Errorf("proxy: invalid Host %q", host)
	}
	u := out.URL
	// The path is escaped here; RawQuery and Opaque are written as they
	// are, and a Rewrite may have set them to anything: a space, CR, LF or
	// other control byte in them would split the request line or add
	// fields (net/http's server never lets such a target in).
	if !validTarget(u.RawQuery) || !validTarget(u.Opaque) {
		return fmt.Errorf("proxy: invalid request target: control character or space in URL query or opaque %q", truncate([]byte(u.RawQuery+u.Opaque)))
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	if u.Opaque != "" {
		bw.WriteString(u.RequestURI())
	} else {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		bw.WriteString(p)
		if u.ForceQuery || u.RawQuery != "" {
			bw.WriteByte('?')
			bw.WriteString(u.RawQuery)
		}
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range out.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		case "User-Agent":
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
		}
		if err := writeField(bw, k, vv, "header"); err != nil {
			return err
		}
	}
	switch {
	case length > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), length, 10))
		bw.WriteString("\r\n")
	case length < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(out.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range out.Trailer {
				if !validFieldName(k) {
					return fmt.Errorf("proxy: invalid request trailer name %q", k)
				}
				if !first {
					bw.WriteString(", ")
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case !hasBody && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch):
		bw.WriteString("Content-Length: 0\r\n")
	}
	if out.Close {
		bw.WriteString("Connection: close\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// readHead reads responses until a final one, passing 1xx responses on
// through e.w; with expecting, a 100 ends it too (status stays 0). The
// final response's fields go into dst, its framing into e.
func (e *exchange) readHead(out *http.Request, dst http.Header, expecting bool) error {
	if d := e.c.ResponseHeaderTimeout; d > 0 {
		_ = e.pc.c.SetReadDeadline(time.Now().Add(d))
		defer e.pc.c.SetReadDeadline(time.Time{})
	}
	err := e.readHeadLoop(out, dst, expecting)
	if err != nil && e.c.ResponseHeaderTimeout > 0 {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errHeaderTimeout
		}
	}
	return err
}

func (e *exchange) readHeadLoop(out *http.Request, dst http.Header, expecting bool) error {
	for informational := 0; ; informational++ {
		if informational > max1xx {
			return errTooMany1xx
		}
		e.budget = e.c.maxHeaderBytes()
		line, err := e.readLine()
		if err != nil {
			return err
		}
		code, minor, err := parseStatusLine(line)
		if err != nil {
			return err
		}
		if err := e.readFields(false); err != nil {
			return err
		}
		if code < 200 {
			switch code {
			case http.StatusContinue:
				if expecting {
					return nil
				}
				continue // the server answers the client's Expect itself
			case http.StatusSwitchingProtocols:
				return errSwitched
			}
			if !out.ProtoAtLeast(1, 1) {
				continue // an HTTP/1.0 client gets no 1xx (RFC 9110 section 15.2)
			}
			h := e.w.Header()
			e.emit(h, false)
			e.w.WriteHeader(code)
			clear(h) // the final response brings its own
			continue
		}
		e.status = code
		if minor == 0 {
			e.reuse = e.reuse && e.connToken("keep-alive")
			if e.tes > 0 {
				return errors.New("proxy: malformed response: Transfer-Encoding in an HTTP/1.0 response")
			}
		}
		if e.connToken("close") {
			e.reuse = false
		}
		if e.tes > 0 && e.cl >= 0 {
			return errCLandTE
		}
		switch {
		case out.Method == http.MethodConnect && code < 300:
			// A tunnel from here on (RFC 9112 section 6.3): whatever
			// follows is not a response, and the connection is no
			// other request's.
			e.toEOF, e.reuse = true, false
		case out.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified:
			e.length, e.done = 0, true
		case e.tes > 0:
			e.chunked = true
		case e.cl >= 0:
			e.length = e.cl
			e.done = e.cl == 0
		default:
			e.toEOF, e.reuse = true, false
		}
		e.emit(dst, false)
		return nil
	}
}

func parseStatusLine(line []byte) (code, minor int, err error) {
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return 0, 0, fmt.Errorf("proxy: malformed response status line %q", truncate(line))
	}
	for _, b := range line[9:12] {
		if b < '0' || b > '9' {
			return 0, 0, fmt.Errorf("proxy: malformed response status code in %q", truncate(line))
		}
		code = code*10 + int(b-'0')
	}
	if code < 100 {
		return 0, 0, fmt.Errorf("proxy: malformed response status code in %q", truncate(line))
	}
	return code, int(line[7] - '0'), nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// readLine reads one line of a header block or a chunk-size line, without
// its line ending (CRLF, or a bare LF as RFC 9112 section 2.2 lets a
// recipient accept), within e.budget. A CR anywhere else is refused.
func (e *exchange) readLine() ([]byte, error) {
	line, err := e.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		e.line = append(e.line[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(e.line) > e.budget {
				return nil, errHeaderTooLarge
			}
			line, err = e.br.ReadSlice('\n')
			e.line = append(e.line, line...)
		}
		line = e.line
	}
	if len(line) > 0 {
		e.gotByte = true
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	e.budget -= len(line)
	if e.budget < 0 {
		return nil, errHeaderTooLarge
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, errBareCR
	}
	return line, nil
}

// readFields reads field lines up to the empty line into e.fields (names
// canonical, in e.scratch), noting the framing and hop-by-hop fields,
// which are not kept. In trailers, framing fields are dropped.
func (e *exchange) readFields(trailer bool) error {
	e.scratch, e.fields, e.conn, e.tes, e.cl = e.scratch[:0], e.fields[:0], e.conn[:0], 0, -1
	if !trailer {
		clear(e.announced)
		e.announced = e.announced[:0]
	}
	for {
		line, err := e.readLine()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return fmt.Errorf("proxy: malformed response header line %q", truncate(line))
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		ks := int32(len(e.scratch))
		for i, b := range name {
			if !isTokenByte(b) {
				return fmt.Errorf("proxy: malformed response header name %q", truncate(name))
			}
			upper := i == 0 || name[i-1] == '-'
			switch {
			case upper && 'a' <= b && b <= 'z':
				b -= 'a' - 'A'
			case !upper && 'A' <= b && b <= 'Z':
				b += 'a' - 'A'
			}
			e.scratch = append(e.scratch, b)
		}
		ke := int32(len(e.scratch))
		for _, b := range value {
			if !validValueByte(b) {
				return fmt.Errorf("proxy: malformed response header value for %q", e.scratch[ks:ke])
			}
		}
		key := e.scratch[ks:ke]
		switch string(key) {
		case "Content-Length":
			if trailer {
				e.scratch = e.scratch[:ks]
				continue
			}
			n, ok := parseContentLength(value)
			if !ok || (e.cl >= 0 && n != e.cl) {
				return fmt.Errorf("proxy: malformed response: invalid or conflicting Content-Length %q", truncate(value))
			}
			if e.cl >= 0 {
				e.scratch = e.scratch[:ks]
				continue // an identical duplicate: one is passed on
			}
			e.cl = n
		case "Transfer-Encoding":
			e.scratch = e.scratch[:ks]
			if trailer {
				continue
			}
			e.tes++
			if e.tes > 1 || !strings.EqualFold(string(value), "chunked") {
				return fmt.Errorf("proxy: malformed response: unsupported Transfer-Encoding %q (only chunked is)", truncate(value))
			}
			continue
		case "Connection":
			e.scratch = append(e.scratch[:ks], value...)
			if !trailer {
				e.conn = append(e.conn, span{ks, int32(len(e.scratch))})
			}
			continue
		case "Trailer":
			e.scratch = e.scratch[:ks]
			if !trailer {
				e.announced = append(e.announced, string(value))
			}
			continue
		case "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Upgrade":
			e.scratch = e.scratch[:ks]
			continue
		case "Host":
			if trailer {
				e.scratch = e.scratch[:ks]
				continue
			}
		}
		vs := int32(len(e.scratch))
		e.scratch = append(e.scratch, value...)
		e.fields = append(e.fields, field{span{ks, ke}, span{vs, int32(len(e.scratch))}})
	}
}

// connToken reports whether the Connection header has token.
func (e *exchange) connToken(token string) bool {
	for _, s := range e.conn {
		for tok := range strings.SplitSeq(string(e.scratch[s.start:s.end]), ",") {
			if strings.EqualFold(strings.TrimSpace(tok), token) {
				return true
			}
		}
	}
	return false
}

// named reports whether the Connection header names key.
func (e *exchange) named(key []byte) bool {
	for _, s := range e.conn {
		for tok := range bytes.SplitSeq(e.scratch[s.start:s.end], []byte{','}) {
			if bytes.EqualFold(bytes.TrimSpace(tok), key) {
				return true
			}
		}
	}
	return false
}

// emit adds the fields read to dst: one string for all their bytes and
// one slice backing their values. In trailers, a field the response's
// Trailer header did not announce gets http.TrailerPrefix.
func (e *exchange) emit(dst http.Header, trailer bool) {
	if !trailer && len(e.announced) > 0 {
		dst["Trailer"] = append(dst["Trailer"], e.announced...)
	}
	if len(e.fields) == 0 {
		return
	}
	all := string(e.scratch)
	vals := make([]string, len(e.fields))
	for i, f := range e.fields {
		kb := e.scratch[f.k.start:f.k.end]
		if len(e.conn) > 0 && e.named(kb) {
			continue
		}
		key, ok := commonHeader[string(kb)]
		if !ok {
			key = all[f.k.start:f.k.end]
		}
		if trailer && !e.isAnnounced(key) {
			key = http.TrailerPrefix + key
		}
		vals[i] = all[f.v.start:f.v.end]
		if cur, ok := dst[key]; ok {
			dst[key] = append(cur, vals[i])
		} else {
			dst[key] = vals[i : i+1 : i+1]
		}
	}
}

func (e *exchange) isAnnounced(key string) bool {
	for _, v := range e.announced {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), key) {
				return true
			}
		}
	}
	return false
}

// Read reads the response body as framed.
func (e *exchange) Read(p []byte) (int, error) {
	if e.done {
		return 0, io.EOF
	}
	switch {
	case e.chunked:
		return e.readChunked(p)
	case e.toEOF:
		n, err := e.br.Read(p)
		if err == io.EOF {
			e.done = true
		}
		return n, err
	}
	if int64(len(p)) > e.length {
		p = p[:e.length]
	}
	n, err := e.br.Read(p)
	e.length -= int64(n)
	if e.length == 0 {
		e.done = true
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close does nothing: the Forwarder ends the exchange.
func (e *exchange) Close() error { return nil }

func (e *exchange) readChunked(p []byte) (int, error) {
	for e.chunkLeft == 0 {
		if e.midChunk {
			cr, err1 := e.br.ReadByte()
			lf, err2 := e.br.ReadByte()
			if err := errors.Join(err1, err2); err != nil {
				return 0, unexpected(err)
			}
			if cr != '\r' || lf != '\n' {
				return 0, errBadChunk
			}
			e.midChunk = false
		}
		e.budget = maxChunkLine
		line, err := e.readLine()
		if err == errHeaderTooLarge {
			return 0, errBadChunk
		}
		if err != nil {
			return 0, unexpected(err)
		}
		size, ok := parseChunkSize(line)
		if !ok {
			return 0, errBadChunk
		}
		if size == 0 {
			e.budget = e.c.maxHeaderBytes()
			if err := e.readFields(true); err != nil {
				return 0, unexpected(err)
			}
			if e.trailers != nil {
				e.emit(e.trailers, true)
			}
			e.done = true
			return 0, io.EOF
		}
		e.chunkLeft = size
	}
	if int64(len(p)) > e.chunkLeft {
		p = p[:e.chunkLeft]
	}
	n, err := e.br.Read(p)
	e.chunkLeft -= int64(n)
	if e.chunkLeft == 0 {
		e.midChunk = true
	}
	if err != nil {
		return n, unexpected(err)
	}
	return n, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkSize parses "HEX [BWS ; ext...]". Leading zeros are allowed
// (RFC 9112 section 7.1; the line's length is bounded by maxChunkLine), at
// most 15 significant digits.
func parseChunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for i < len(line)-1 && line[i] == '0' && line[i+1] == '0' {
		i++
	}
	sig := i
	for ; i < len(line); i++ {
		b := line[i]
		var d byte
		switch {
		case '0' <= b && b <= '9':
			d = b - '0'
		case 'a' <= b && b <= 'f':
			d = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			d = b - 'A' + 10
		default:
			goto rest
		}
		if i-sig >= 16 || (i-sig == 15 && line[sig] != '0') {
			return 0, false // beyond 2^60: no sane chunk
		}
		n = n<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, false
	}
	ext := trimOWS(line[i:])
	if len(ext) > 0 && ext[0] != ';' {
		return 0, false
	}
	return n, true
}

func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isTokenByte(b byte) bool {
	return b < 0x80 && tokenTable[b]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validValueByte(b byte) bool { return b >= 0x20 && b != 0x7f || b == '\t' }

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !validValueByte(s[i]) {
			return false
		}
	}
	return true
}

// validTarget reports whether s has no byte that would end or split a
// request target: a space or a control character.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

func validHost(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b <= ' ' || b == 0x7f {
			return false
		}
	}
	return true
}

// commonHeader interns the names most responses carry, so that reading
// them allocates nothing of their own.
var commonHeader = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Alt-Svc", "Cache-Control", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires", "Last-Modified", "Link", "Location",
		"Retry-After", "Server", "Server-Timing", "Set-Cookie", "Strict-Transport-Security", "Vary", "Via",
		"Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options", "X-Request-Id", "Grpc-Status", "Grpc-Message",
	} {
		m[k] = k
	}
	return m
}()

// writeField writes the field k with each of its values, one line each,
// after checking that neither could split the message (what names it in
// the error: "header" or "request trailer").
func writeField(bw *bufio.Writer, k string, vv []string, what string) error {
	if !validFieldName(k) {
		return fmt.Errorf("proxy: invalid %s name %q", what, k)
	}
	for _, v := range vv {
		if !validFieldValue(v) {
			return fmt.Errorf("proxy: invalid %s value for %q", what, k)
		}
		bw.WriteString(k)
		bw.WriteString(": ")
		bw.WriteString(v)
		bw.WriteString("\r\n")
	}
	return nil
}
