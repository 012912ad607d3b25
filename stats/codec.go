package stats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ContentType is the media type of the binary batch encoding, for the
// Content-Type and Accept headers.
const ContentType = "application/vnd.servingkit.stats.v1"

// MaxNameLength is the longest revision or source name the decoder accepts,
// in bytes.
const MaxNameLength = 1024

// The format of a batch, all integers little-endian or varint:
//
//	magic   "skst"
//	version byte (1)
//	count   uvarint
//	count × message:
//	  revision  uvarint length, bytes
//	  source    uvarint length, bytes
//	  4 × float64 bits (concurrency, proxied concurrency, rps, proxied rps)
//	  uptime    varint nanoseconds
//	  time      varint Unix seconds, uvarint nanoseconds in [0, 1e9)
//
// The time is in seconds and nanoseconds, as time.Time holds it, so that
// every time.Time round-trips: Unix nanoseconds only reach 1678–2262.
const (
	magic      = "skst"
	version    = 1
	minMessage = 1 + 1 + 4*8 + 1 + 1 + 1 // two empty names, four floats, three one-byte varints
)

// ErrBadMagic is returned by Decode when the input does not start with the
// batch header, for example when it is JSON or text.
var ErrBadMagic = errors.New("stats: not a stats batch (bad magic)")

// AppendEncode appends the binary encoding of msgs to dst and returns the
// extended buffer. It does not validate the stats. Every time, the zero time
// included, is carried to the nanosecond (not its location or monotonic
// reading).
func AppendEncode(dst []byte, msgs []Message) []byte {
	dst = append(dst, magic...)
	dst = append(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for i := range msgs {
		m := &msgs[i]
		dst = appendString(dst, m.Revision)
		dst = appendString(dst, m.Stat.Source)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(m.Stat.Concurrency))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(m.Stat.ProxiedConcurrency))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(m.Stat.RPS))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(m.Stat.ProxiedRPS))
		dst = binary.AppendVarint(dst, int64(m.Stat.Uptime))
		dst = binary.AppendVarint(dst, m.Stat.Time.Unix())
		dst = binary.AppendUvarint(dst, uint64(m.Stat.Time.Nanosecond()))
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode parses a batch produced by AppendEncode. Malformed input — a bad
// header, a truncated or oversized field, trailing bytes, a name longer
// than MaxNameLength, a number that is not finite and non-negative, or a
// time's nanoseconds outside [0, 1e9) — gives an error naming the message
// and the field; Decode never panics and never allocates more than the
// input justifies.
func Decode(b []byte) ([]Message, error) {
	if len(b) < len(magic)+1 || string(b[:len(magic)]) != magic {
		return nil, ErrBadMagic
	}
	if b[len(magic)] != version {
		return nil, fmt.Errorf("stats: unsupported batch version %d, want %d", b[len(magic)], version)
	}
	d := decoder{b: b[len(magic)+1:]}
	n, ok := d.uvarint()
	if !ok {
		return nil, errors.New("stats: truncated batch: bad message count")
	}
	if n > uint64(len(d.b)/minMessage) {
		return nil, fmt.Errorf("stats: batch claims %d messages but holds at most %d", n, len(d.b)/minMessage)
	}
	msgs := make([]Message, n)
	for i := range msgs {
		if err := d.message(&msgs[i]); err != nil {
			return nil, fmt.Errorf("stats: message %d: %w", i, err)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("stats: %d trailing bytes after %d messages", len(d.b), n)
	}
	return msgs, nil
}

type decoder struct{ b []byte }

func (d *decoder) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, false
	}
	d.b = d.b[n:]
	return v, true
}

func (d *decoder) varint() (int64, bool) {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, false
	}
	d.b = d.b[n:]
	return v, true
}

func (d *decoder) string(field string) (string, error) {
	n, ok := d.uvarint()
	if !ok {
		return "", fmt.Errorf("%s: truncated length", field)
	}
	if n > MaxNameLength {
		return "", fmt.Errorf("%s: length %d exceeds limit %d", field, n, MaxNameLength)
	}
	if n > uint64(len(d.b)) {
		return "", fmt.Errorf("%s: length %d but only %d bytes left", field, n, len(d.b))
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s, nil
}

func (d *decoder) float(field string) (float64, error) {
	if len(d.b) < 8 {
		return 0, fmt.Errorf("%s: truncated", field)
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf("%s = %v, must be finite and >= 0", field, v)
	}
	return v, nil
}

func (d *decoder) message(m *Message) error {
	var err error
	if m.Revision, err = d.string("revision"); err != nil {
		return err
	}
	s := &m.Stat
	if s.Source, err = d.string("source"); err != nil {
		return err
	}
	if s.Concurrency, err = d.float("concurrency"); err != nil {
		return err
	}
	if s.ProxiedConcurrency, err = d.float("proxiedConcurrency"); err != nil {
		return err
	}
	if s.RPS, err = d.float("rps"); err != nil {
		return err
	}
	if s.ProxiedRPS, err = d.float("proxiedRps"); err != nil {
		return err
	}
	up, ok := d.varint()
	if !ok {
		return errors.New("uptime: truncated")
	}
	if up < 0 {
		return fmt.Errorf("uptime = %v, must be >= 0", time.Duration(up))
	}
	s.Uptime = time.Duration(up)
	sec, ok := d.varint()
	if !ok {
		return errors.New("time: truncated")
	}
	nsec, ok := d.uvarint()
	if !ok {
		return errors.New("time: truncated")
	}
	if nsec >= 1e9 {
		return fmt.Errorf("time: nanoseconds = %d, must be in [0, 999999999]", nsec)
	}
	// time.Unix and Time.Unix shift by the same constant, wrapping alike,
	// so every int64 of seconds maps to one time and back.
	if t := time.Unix(sec, int64(nsec)); !t.IsZero() {
		s.Time = t
	}
	return nil
}
