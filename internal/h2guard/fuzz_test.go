package h2guard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"fronttier/internal/clock/clocktest"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzLimits returns small limits, so that fuzzing reaches them, on a
// clock that stands still, so that budgets are counts.
func fuzzLimits() Limits {
	return Limits{MaxFrameSize: 16 << 10, MaxBlock: 1 << 10, MaxHeaderListSize: 2 << 10, MaxContinuations: 4,
		Resets: Rate{Burst: 4}, Pings: Rate{Burst: 4}, Settings: Rate{Burst: 4}, WindowUpdates: Rate{Burst: 4},
		Clock: clocktest.New(time.Unix(0, 0))}
}

// screenAll screens in with fuzzLimits, reading it in chunks of the sizes
// given in turn, and returns the bytes yielded, the screen and the error
// that ended reading.
func screenAll(t *testing.T, in []byte, chunks ...int) ([]byte, *screen, error) {
	s := newScreen(bytes.NewReader(in), fuzzLimits())
	var out []byte
	buf := make([]byte, 1<<12)
	for i := 0; ; i++ {
		n, err := s.Read(buf[:chunks[i%len(chunks)]])
		out = append(out, buf[:n]...)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && err != errCalm {
				t.Fatalf("read: %v", err)
			}
			return out, s, err
		}
		if i > 10*len(in)+100 {
			t.Fatal("reading does not end")
		}
	}
}

// FuzzGuard feeds the client preface and then arbitrary bytes through a
// screen, with the checks of checkScreen.
func FuzzGuard(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScreen(t, append([]byte(http2.ClientPreface), data...))
	})
}

// checkScreen screens in and checks what a screen must do whatever it
// reads: not panic; yield the same whatever the sizes it is read in; up
// to the frame it rejects with an empty DATA frame on stream 0, or ends
// with errCalm at a frame boundary (if any), yield a stream it passes
// unchanged when screened again, which is the input itself unless it
// rewrote a SETTINGS frame; keep its budgets between none and their
// burst; and let no more frames of a kind through than their budget (see
// checkBudgets).
func checkScreen(t *testing.T, in []byte) {
	out, s, err := screenAll(t, in, 4096)
	if small, _, _ := screenAll(t, in, 1, 3, 9, 100); !bytes.Equal(small, out) {
		t.Fatalf("read in small chunks, yields\n%x\nnot\n%x", small, out)
	}
	if (s.calmed != "") != (err == errCalm) {
		t.Fatalf("calmed for %q, but reading ended with %v", s.calmed, err)
	}
	body := out
	switch {
	case s.calmed != "":
		if end, ok := frameEnd(out); !ok || end != len(out) {
			t.Fatalf("calmed for %s within a frame: %x", s.calmed, out)
		}
	case s.mode == modeRejected:
		var empty [headerLen]byte
		if len(out) < headerLen || !bytes.Equal(out[len(out)-headerLen:], empty[:]) {
			t.Fatalf("rejected, but does not end with an empty DATA frame on stream 0: %x", out)
		}
		body = out[:len(out)-headerLen]
	}
	if again, s2, _ := screenAll(t, body, 4096); !bytes.Equal(again, body) || s2.rewrites > 0 ||
		s2.mode == modeRejected || s2.calmed != "" {
		t.Fatalf("screened again, %x\nyields\n%x", body, again)
	}
	for _, b := range []bucket{s.resets, s.pings, s.settingsB, s.updates} {
		if b.tokens < 0 || b.tokens > b.rate.Burst {
			t.Fatalf("a budget of %+v has %d tokens", b.rate, b.tokens)
		}
	}
	checkBudgets(t, out, s.lim)
	if s.rewrites > 0 {
		return
	}
	if !bytes.HasPrefix(in, body) || s.mode != modeRejected && len(body) != len(in) {
		t.Fatalf("without SETTINGS rewrites, yields\n%x\nfor\n%x", out, in)
	}
}

// frameEnd returns where the last whole frame after the client preface at
// the start of p ends, and false if p does not start with the preface.
func frameEnd(p []byte) (int, bool) {
	end := len(http2.ClientPreface)
	if !bytes.HasPrefix(p, []byte(http2.ClientPreface)) {
		return 0, false
	}
	for len(p)-end >= headerLen {
		n := headerLen + (int(p[end])<<16 | int(p[end+1])<<8 | int(p[end+2]))
		if len(p)-end < n {
			break
		}
		end += n
	}
	return end, true
}

// checkBudgets walks the frames a screen with limits l yielded, up to the
// first one the server refuses with a connection error (the screen passes
// everything after it), and fails the test if more RST_STREAM, PING,
// SETTINGS or small WINDOW_UPDATE frames got through than their budget's
// burst (l's clock stands still), or a header block more CONTINUATION
// frames than l allows.
func checkBudgets(t *testing.T, out []byte, l Limits) {
	p, ok := bytes.CutPrefix(out, []byte(http2.ClientPreface))
	if !ok {
		return
	}
	var resets, pings, settings, updates, conts int
	var block uint32
	for len(p) >= headerLen {
		length := int(p[0])<<16 | int(p[1])<<8 | int(p[2])
		typ, flags := p[3], p[4]
		stream := binary.BigEndian.Uint32(p[5:]) & (1<<31 - 1)
		payload := p[headerLen:min(len(p), headerLen+length)]
		if length > int(l.MaxFrameSize) || block != 0 && (typ != typeContinuation || stream != block) ||
			(typ == typeHeaders || typ == typeContinuation) && stream == 0 ||
			typ == typeContinuation && block == 0 {
			break
		}
		switch typ {
		case typeHeaders, typeContinuation:
			if typ == typeHeaders {
				conts = 0
			} else {
				conts++
			}
			block = stream
			if flags&flagEndHeaders != 0 {
				block = 0
			}
		case typeRSTStream:
			if stream != 0 && length == 4 {
				resets++
			}
		case typePing:
			if flags&flagAck == 0 && stream == 0 && length == 8 {
				pings++
			}
		case typeSettings:
			if flags&flagAck == 0 && stream == 0 {
				settings++
			}
		case typeWindowUpdate:
			if length == 4 && len(payload) == 4 {
				inc := binary.BigEndian.Uint32(payload) & (1<<31 - 1)
				if inc < smallIncrement && (inc != 0 || stream == 0) {
					updates++
				}
			}
		}
		if conts > l.MaxContinuations || resets > l.Resets.Burst || pings > l.Pings.Burst ||
			settings > l.Settings.Burst || updates > l.WindowUpdates.Burst {
			t.Fatalf("past a budget: %d CONTINUATIONs in a block, %d RST_STREAM, %d PING, %d SETTINGS, %d small WINDOW_UPDATE",
				conts, resets, pings, settings, updates)
		}
		p = p[headerLen+len(payload):]
	}
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

	// The attacks, each one round past fuzzLimits' budgets.
	fr.AllowIllegalWrites = true
	rounds := func(n int, round func(i int)) {
		check(fr.WriteSettings())
		for i := range n {
			round(i)
		}
		seed()
	}
	req := func(id uint32, end bool) {
		check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: encode(get...), EndStream: end, EndHeaders: true}))
	}
	rounds(5, func(i int) { // rapid reset
		req(uint32(2*i+1), true)
		check(fr.WriteRSTStream(uint32(2*i+1), http2.ErrCodeCancel))
	})
	rounds(5, func(i int) { // MadeYouReset: WINDOW_UPDATE of 0, DATA after END_STREAM
		req(uint32(2*i+1), i%2 == 0)
		if i%2 == 0 {
			check(fr.WriteData(uint32(2*i+1), false, []byte("x")))
		} else {
			check(fr.WriteWindowUpdate(uint32(2*i+1), 0))
		}
	})
	rounds(5, func(i int) { check(fr.WritePing(false, [8]byte{byte(i)})) })
	rounds(4, func(int) { check(fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 15})) })
	rounds(5, func(int) { check(fr.WriteWindowUpdate(0, 1)) })
	rounds(1, func(int) { // CONTINUATION flood
		check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode(get...)}))
		for range 5 {
			check(fr.WriteContinuation(1, false, nil))
		}
	})
	rounds(1, func(int) { // HPACK bomb: an entry of 200 bytes, then 20 references
		req(1, true)
		first := encode(append(get, "x-bomb", string(bytes.Repeat([]byte("b"), 200)))...)
		check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: first, EndStream: true, EndHeaders: true}))
		bomb := append(encode(get...), bytes.Repeat([]byte{0x80 | 62}, 20)...)
		check(fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: bomb, EndStream: true, EndHeaders: true}))
	})
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
		calmed   string
	}{
		{name: "duplicate settings", in: seeds[0], rewrites: 1, mode: modeScreen},
		{name: "invalid duplicate settings", in: seeds[1], rewrites: 1, mode: modeScreen},
		{name: "connection in a continuation", in: seeds[2], mode: modeRejected},
		{name: "pad too long", in: seeds[3], mode: modeScreen},
		{name: "rapid reset", in: seeds[4], mode: modeRejected, calmed: AttackRapidReset},
		{name: "MadeYouReset", in: seeds[5], mode: modeRejected, calmed: AttackMadeYouReset},
		{name: "ping flood", in: seeds[6], mode: modeRejected, calmed: AttackPingFlood},
		{name: "settings flood", in: seeds[7], mode: modeRejected, calmed: AttackSettingsFlood},
		{name: "window update flood", in: seeds[8], mode: modeRejected, calmed: AttackWindowUpdateFlood},
		{name: "continuation flood", in: seeds[9], mode: modeRejected, calmed: AttackContinuationFlood},
		{name: "hpack bomb", in: seeds[10], mode: modeRejected, calmed: AttackHPACKBomb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte(http2.ClientPreface), tt.in...)
			out, s, _ := screenAll(t, in, 4096)
			if s.rewrites != tt.rewrites || s.mode != tt.mode || s.calmed != tt.calmed {
				t.Errorf("%d rewrites, mode %d, calmed %q; want %d, %d, %q", s.rewrites, s.mode, s.calmed, tt.rewrites, tt.mode, tt.calmed)
			}
			if tt.rewrites == 0 && tt.mode != modeRejected && !bytes.Equal(out, in) {
				t.Errorf("yields\n%x\nfor\n%x", out, in)
			}
		})
	}
}
