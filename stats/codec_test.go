package stats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleBatch() []Message {
	return []Message{{
		Revision: "default/hello-00001",
		Stat: Stat{
			Source: "hello-00001-7f9c", Concurrency: 3.5, ProxiedConcurrency: 1.25,
			RPS: 120, ProxiedRPS: 20, Uptime: 90 * time.Second, Time: t0,
		},
	}, {
		Revision: "default/hello-00002",
		Stat:     Stat{Source: "activator-0"}, // zero time stays zero
	}}
}

func TestCodecRoundTrip(t *testing.T) {
	in := sampleBatch()
	got, err := Decode(AppendEncode(nil, in))
	require.NoError(t, err)
	require.Len(t, got, 2)
	for i := range in {
		assert.Equal(t, in[i].Revision, got[i].Revision)
		assert.True(t, in[i].Stat.Time.Equal(got[i].Stat.Time), "time %d", i)
		a, b := in[i].Stat, got[i].Stat
		a.Time, b.Time = time.Time{}, time.Time{}
		assert.Equal(t, a, b)
	}
	assert.True(t, got[1].Stat.Time.IsZero())

	empty, err := Decode(AppendEncode(nil, nil))
	require.NoError(t, err)
	assert.Empty(t, empty)
}

// TestCodecTimes: every time survives the wire to the nanosecond, including
// those outside the range of Unix nanoseconds (1678–2262), and the Unix
// epoch stays distinct from the zero time.
func TestCodecTimes(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
	}{
		{"zero time", time.Time{}},
		{"unix epoch", time.Unix(0, 0)},
		{"one nanosecond after the zero time", time.Time{}.Add(1)},
		{"before the epoch", time.Unix(-1, 500_000_000)},
		{"now-ish", t0.Add(123456789)},
		{"before 1678", time.Date(1600, 1, 1, 0, 0, 0, 7, time.UTC)},
		{"after 2262", time.Date(3000, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		{"largest time", time.Unix(math.MaxInt64-62135596800, 999_999_999)},
		{"smallest time", time.Unix(math.MinInt64, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(AppendEncode(nil, []Message{{Revision: "r", Stat: Stat{Time: tt.in}}}))
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.True(t, tt.in.Equal(got[0].Stat.Time), "sent %v, got %v", tt.in, got[0].Stat.Time)
			assert.Equal(t, tt.in.IsZero(), got[0].Stat.Time.IsZero())
			if tt.in.IsZero() {
				assert.Equal(t, time.Time{}, got[0].Stat.Time)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := AppendEncode(nil, sampleBatch())
	withFloat := func(v float64) []byte {
		b := AppendEncode(nil, []Message{{Revision: "r", Stat: Stat{Source: "s"}}})
		// header(5) + count(1) + "r"(2) + "s"(2): first float.
		binary.LittleEndian.PutUint64(b[10:], math.Float64bits(v))
		return b
	}
	withNanos := func(ns uint64) []byte {
		b := AppendEncode(nil, []Message{{Revision: "r"}})
		// The time's nanoseconds end the message: one byte, 0.
		return binary.AppendUvarint(b[:len(b)-1], ns)
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"empty", nil, "bad magic"},
		{"json", []byte(`[{"revision":"x"}]`), "bad magic"},
		{"version", append([]byte("skst"), 9, 0), "unsupported batch version 9"},
		{"no count", []byte("skst\x01"), "bad message count"},
		{"count too big", append([]byte("skst\x01"), 0xff, 0xff, 0xff, 0xff, 0x0f), "claims 4294967295 messages"},
		{"truncated", good[:len(good)-3], "message 1"},
		{"trailing", append(bytes.Clone(good), 0), "1 trailing bytes"},
		{"nan", withFloat(math.NaN()), "concurrency = NaN"},
		{"negative", withFloat(-1), "concurrency = -1"},
		{"inf", withFloat(math.Inf(1)), "concurrency = +Inf"},
		{"nanoseconds", withNanos(1e9), "message 0: time: nanoseconds = 1000000000, must be in [0, 999999999]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
	_, err := Decode([]byte("nope!"))
	assert.True(t, errors.Is(err, ErrBadMagic))
}

func TestDecodeNameLimit(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), MaxNameLength+1))
	_, err := Decode(AppendEncode(nil, []Message{{Revision: long}}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "revision: length 1025 exceeds limit 1024")
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendEncode(nil, sampleBatch()))
	f.Add(AppendEncode(nil, nil))
	f.Add([]byte("skst\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes is valid, and survives a re-encoding unchanged
		// (the bytes may differ: a varint may be written longer than
		// needed).
		for _, m := range msgs {
			if err := m.Stat.Validate(); err != nil {
				t.Fatalf("decoded an invalid stat: %v", err)
			}
		}
		again, err := Decode(AppendEncode(nil, msgs))
		if err != nil {
			t.Fatalf("re-decoding failed: %v", err)
		}
		if len(again) != len(msgs) {
			t.Fatalf("re-decoded %d messages, want %d", len(again), len(msgs))
		}
		for i := range msgs {
			a, b := msgs[i], again[i]
			if !a.Stat.Time.Equal(b.Stat.Time) {
				t.Fatalf("message %d: time %v re-decoded as %v", i, a.Stat.Time, b.Stat.Time)
			}
			a.Stat.Time, b.Stat.Time = time.Time{}, time.Time{}
			if a != b {
				t.Fatalf("message %d: %+v re-decoded as %+v", i, a, b)
			}
		}
	})
}

func BenchmarkEncodeDecode(b *testing.B) {
	batch := sampleBatch()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEncode(buf[:0], batch)
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
