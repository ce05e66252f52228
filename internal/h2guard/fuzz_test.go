package h2guard

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzLimits are small, so that fuzzing reaches the limits.
var fuzzLimits = Limits{MaxFrameSize: 16 << 10, MaxBlock: 1 << 10}

// screenAll screens in, reading it in chunks of the sizes given in turn,
// and returns the bytes yielded and the screen.
func screenAll(t *testing.T, in []byte, chunks ...int) ([]byte, *screen) {
	s := newScreen(bytes.NewReader(in), fuzzLimits)
	var out []byte
	buf := make([]byte, 1<<12)
	for i := 0; ; i++ {
		n, err := s.Read(buf[:chunks[i%len(chunks)]])
		out = append(out, buf[:n]...)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && err != errCalm {
				t.Fatalf("read: %v", err)
			}
			return out, s
		}
		if i > 10*len(in)+100 {
			t.Fatal("reading does not end")
		}
	}
}

// FuzzGuard feeds the client preface and then arbitrary bytes through a
// screen. Whatever the bytes, the screen must not panic, and what it
// yields must not depend on how it is read. Up to the frame it rejects
// with an empty DATA frame on stream 0 (if any), what it yields is a
// stream it passes unchanged when screened again, and that stream is the
// input itself unless it rewrote a SETTINGS frame.
func FuzzGuard(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append([]byte(http2.ClientPreface), data...)
		out, s := screenAll(t, in, 4096)
		if small, _ := screenAll(t, in, 1, 3, 9, 100); !bytes.Equal(small, out) {
			t.Fatalf("read in small chunks, yields\n%x\nnot\n%x", small, out)
		}
		body := out
		if s.mode == modeRejected {
			var empty [headerLen]byte
			if len(out) < headerLen || !bytes.Equal(out[len(out)-headerLen:], empty[:]) {
				t.Fatalf("rejected, but does not end with an empty DATA frame on stream 0: %x", out)
			}
			body = out[:len(out)-headerLen]
		}
		if again, s2 := screenAll(t, body, 4096); !bytes.Equal(again, body) || s2.rewrites > 0 || s2.mode == modeRejected {
			t.Fatalf("screened again, %x\nyields\n%x", body, again)
		}
		if s.rewrites > 0 {
			return
		}
		if !bytes.HasPrefix(in, body) || s.mode != modeRejected && len(body) != len(in) {
			t.Fatalf("without SETTINGS rewrites, yields\n%x\nfor\n%x", out, in)
		}
	})
}

// fuzzSeeds returns a few client streams after the preface;
// testdata/fuzz/FuzzGuard has malformed ones.
func fuzzSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	var b, block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	encode := func(kv ...string) []byte {
		block.Reset()
		for i := 0; i < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return bytes.Clone(block.Bytes())
	}
	fr := http2.NewFramer(&b, nil)
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"}
	check := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	seed := func() { // each seed is a connection of its own
		seeds = append(seeds, bytes.Clone(b.Bytes()))
		b.Reset()
		enc = hpack.NewEncoder(&block)
	}

	check(fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}))
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode(get...), EndHeaders: true}))
	check(fr.WriteData(1, true, []byte("body")))
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: encode(get...), EndHeaders: true, EndStream: true}))
	seed()

	check(fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 2},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0}))
	seed()

	bad := encode(append(get, "x-a", "aaaa", "connection", "close")...)
	check(fr.WriteSettings())
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: bad[:6]}))
	check(fr.WriteContinuation(5, false, bad[6:12]))
	check(fr.WriteContinuation(5, true, bad[12:]))
	seed()

	check(fr.WriteSettings())
	check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode(append(get, "te", "trailers")...),
		EndHeaders: true, PadLength: 7, Priority: http2.PriorityParam{StreamDep: 3, Weight: 9}}))
	check(fr.WriteRawFrame(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersEndHeaders, 3, []byte{9, 0x82}))
	check(fr.WritePing(false, [8]byte{1}))
	seed()
	return seeds
}

func TestScreenSeeds(t *testing.T) {
	t.Parallel()
	seeds := fuzzSeeds(t)
	tests := []struct {
		name     string
		in       []byte
		rewrites int
		mode     mode
	}{
		{name: "duplicate settings", in: seeds[0], rewrites: 1, mode: modeScreen},
		{name: "invalid duplicate settings", in: seeds[1], rewrites: 1, mode: modeScreen},
		{name: "connection in a continuation", in: seeds[2], mode: modeRejected},
		{name: "pad too long", in: seeds[3], mode: modeScreen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte(http2.ClientPreface), tt.in...)
			out, s := screenAll(t, in, 4096)
			if s.rewrites != tt.rewrites || s.mode != tt.mode {
				t.Errorf("%d rewrites, mode %d; want %d, %d", s.rewrites, s.mode, tt.rewrites, tt.mode)
			}
			if tt.rewrites == 0 && tt.mode != modeRejected && !bytes.Equal(out, in) {
				t.Errorf("yields\n%x\nfor\n%x", out, in)
			}
		})
	}
}
