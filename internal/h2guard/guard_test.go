package h2guard

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

func TestRequest(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	cl := dial(t, s)
	cl.get(1, "x-n", "1")
	r := cl.read(1)
	want(t, r, "status 200")
	if r.header.Get("x-tls") != "yes" {
		t.Error("r.TLS is nil in the handler")
	}
	if string(r.data) != "hello" {
		t.Errorf("body %q, want hello", r.data)
	}
	var frameSize uint32
	for _, st := range cl.settings {
		if st.ID == http2.SettingMaxFrameSize {
			frameSize = st.Val
		}
	}
	if frameSize != 16<<10 {
		t.Errorf("server advertises SETTINGS_MAX_FRAME_SIZE %d, want %d", frameSize, 16<<10)
	}
}

func TestDuplicateSettings(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	// Processed in order, the window ends at 1: the response's first DATA
	// frame carries one byte.
	cl := dial(t, s,
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100},
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	cl.get(1)
	cl.stopAtData = true
	r := cl.read(1)
	want(t, r, "status 200")
	if len(r.frames) != 1 || r.frames[0] != 1 {
		t.Fatalf("first DATA frame of %v bytes, want 1", r.frames)
	}
	// Opening the window lets the rest follow.
	if err := cl.fr.WriteWindowUpdate(1, 10); err != nil {
		t.Fatal(err)
	}
	cl.stopAtData = false
	rest := cl.read(1)
	if got := string(r.data) + string(rest.data); got != "hello" {
		t.Errorf("body %q, want hello", got)
	}
}

func TestInvalidDuplicateSettings(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	tests := []struct {
		name     string
		settings []http2.Setting
		want     string
	}{
		{name: "window too large then valid", want: "GOAWAY FLOW_CONTROL_ERROR", settings: []http2.Setting{
			{ID: http2.SettingInitialWindowSize, Val: 1 << 31},
			{ID: http2.SettingInitialWindowSize, Val: 100}}},
		{name: "valid then window too large", want: "GOAWAY FLOW_CONTROL_ERROR", settings: []http2.Setting{
			{ID: http2.SettingInitialWindowSize, Val: 100},
			{ID: http2.SettingInitialWindowSize, Val: 1 << 31}}},
		{name: "enable push 2 then 0", want: "GOAWAY PROTOCOL_ERROR", settings: []http2.Setting{
			{ID: http2.SettingEnablePush, Val: 2},
			{ID: http2.SettingEnablePush, Val: 0}}},
		{name: "frame size too small then valid", want: "GOAWAY PROTOCOL_ERROR", settings: []http2.Setting{
			{ID: http2.SettingMaxFrameSize, Val: 1 << 10},
			{ID: http2.SettingMaxFrameSize, Val: 16 << 10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, s, tt.settings...)
			want(t, cl.read(1), tt.want)
		})
	}
}

func TestMalformedFields(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	tests := []struct {
		name  string
		extra []string
		want  string
	}{
		{name: "connection", extra: []string{"connection", "keep-alive"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "proxy-connection", extra: []string{"proxy-connection", "close"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "keep-alive", extra: []string{"keep-alive", "timeout=5"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "transfer-encoding", extra: []string{"transfer-encoding", "chunked"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "upgrade", extra: []string{"upgrade", "websocket"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "te gzip", extra: []string{"te", "gzip"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "te trailers, gzip", extra: []string{"te", "trailers, gzip"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "te trailers", extra: []string{"te", "trailers"}, want: "status 200"},
		{name: "te empty", extra: []string{"te", ""}, want: "status 200"},
		{name: "connection-like name", extra: []string{"connections", "x", "x-upgrade", "y"}, want: "status 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, s)
			cl.get(1, tt.extra...)
			want(t, cl.read(1), tt.want)
		})
	}
}

// writeSplit sends block on stream id as a HEADERS frame and CONTINUATION
// frames of at most size bytes each.
func (cl *client) writeSplit(id uint32, block []byte, size int, p http2.HeadersFrameParam) {
	cl.t.Helper()
	first := block[:min(size, len(block))]
	block = block[len(first):]
	p.StreamID, p.BlockFragment, p.EndStream, p.EndHeaders = id, first, true, len(block) == 0
	if err := cl.fr.WriteHeaders(p); err != nil {
		cl.t.Fatal(err)
	}
	for len(block) > 0 {
		frag := block[:min(size, len(block))]
		block = block[len(frag):]
		if err := cl.fr.WriteContinuation(id, len(block) == 0, frag); err != nil {
			cl.t.Fatal(err)
		}
	}
}

func TestContinuation(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	tests := []struct {
		name  string
		extra []string
		want  string
	}{
		{name: "good", extra: []string{"x-a", "aaaaaaaaaa", "x-b", "bbbbbbbbbb", "x-n", "7"}, want: "status 200"},
		{name: "connection last", extra: []string{"x-a", "aaaaaaaaaa", "x-b", "bbbbbbbbbb", "connection", "close"}, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "te first", extra: []string{"te", "deflate", "x-a", "aaaaaaaaaa", "x-b", "bbbbbbbbbb"}, want: "GOAWAY PROTOCOL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, s)
			block := cl.encode(tt.extra...)
			cl.writeSplit(1, block, 7, http2.HeadersFrameParam{})
			r := cl.read(1)
			want(t, r, tt.want)
			if r.status != "" && r.header.Get("x-n") != "7" {
				t.Errorf("x-n %q, want 7", r.header.Get("x-n"))
			}
		})
	}
}

func TestPaddedPriority(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	param := http2.HeadersFrameParam{PadLength: 20, Priority: http2.PriorityParam{StreamDep: 0, Weight: 15, Exclusive: true}}
	tests := []struct {
		name  string
		extra []string
		split int
		want  string
	}{
		{name: "good", extra: []string{"x-n", "1"}, split: 1 << 10, want: "status 200"},
		{name: "good split", extra: []string{"x-n", "1"}, split: 5, want: "status 200"},
		{name: "te gzip", extra: []string{"te", "gzip"}, split: 1 << 10, want: "GOAWAY PROTOCOL_ERROR"},
		{name: "upgrade split", extra: []string{"upgrade", "h2c"}, split: 5, want: "GOAWAY PROTOCOL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, s)
			cl.writeSplit(1, cl.encode(tt.extra...), tt.split, param)
			want(t, cl.read(1), tt.want)
		})
	}
}

func TestHugeBlock(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	cl := dial(t, s)
	// 80 fields of 1 KiB, 80 KiB in all, in frames of 16 KiB: over the
	// guard's limit, so it passes the block through and stops screening.
	var extra []string
	for i := range 80 {
		extra = append(extra, fmt.Sprintf("x-big-%d", i), strings.Repeat("v", 1<<10))
	}
	block := cl.encode(extra...)
	if len(block) <= defaultMaxBlock {
		t.Fatalf("block of %d bytes, want more than %d", len(block), defaultMaxBlock)
	}
	cl.writeSplit(1, block, 16<<10, http2.HeadersFrameParam{})
	want(t, cl.read(1), "status 200")
	// Unscreened now, a connection-specific field gets Go's own answer.
	cl.get(3, "connection", "close")
	want(t, cl.read(3), "status 400")
}

func TestDynamicTable(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	cl := dial(t, s)
	// x-n repeats every 5 requests, so it is reused from the table by
	// index; every other request adds a new x-pad of 100 bytes, so the 4
	// KiB table keeps evicting entries, the repeated ones among them.
	var small int
	for i := range 300 {
		id := uint32(2*i + 1)
		n := fmt.Sprint(i % 5)
		extra := []string{"te", "trailers", "x-n", n, "user-agent", "h2guard-test"}
		if i%2 == 1 {
			extra = append(extra, "x-pad", fmt.Sprintf("%0100d", i))
		}
		if i == 150 {
			cl.enc.SetMaxDynamicTableSize(2048) // a size update opens the next block
		}
		block := cl.encode(extra...)
		if len(block) < 10 {
			small++ // every field indexed
		}
		cl.writeSplit(id, block, 1<<10, http2.HeadersFrameParam{})
		r := cl.read(id)
		want(t, r, "status 200")
		if got := r.header.Get("x-n"); got != n {
			t.Fatalf("request %d: x-n %q, want %q", i, got, n)
		}
	}
	t.Logf("%d of 300 blocks wholly indexed", small)
	if small == 0 {
		t.Error("no request was encoded from the dynamic table")
	}
	// "te" is now a dynamic table entry; a TE of gzip names it by index.
	cl.get(601, "te", "gzip")
	want(t, cl.read(601), "GOAWAY PROTOCOL_ERROR")
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, http.HandlerFunc(echo))
	cl := dial(t, s)
	cl.get(1)
	want(t, cl.read(1), "status 200")
	done := shutdown(s.hs)
	r := cl.read(3)
	want(t, r, "GOAWAY NO_ERROR")
	if r.goAway.LastStreamID != 1 {
		t.Errorf("GOAWAY last stream %d, want 1", r.goAway.LastStreamID)
	}
	cl.c.Close()
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestFragment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		p     []byte
		flags byte
		want  []byte
		ok    bool
	}{
		{name: "plain", p: []byte{1, 2, 3}, want: []byte{1, 2, 3}, ok: true},
		{name: "padded", p: []byte{2, 1, 2, 3, 0, 0}, flags: flagPadded, want: []byte{1, 2, 3}, ok: true},
		{name: "all padding", p: []byte{2, 0, 0}, flags: flagPadded, want: []byte{}, ok: true},
		{name: "pad too long", p: []byte{3, 0, 0}, flags: flagPadded},
		{name: "no pad length", p: []byte{}, flags: flagPadded},
		{name: "priority", p: []byte{0, 0, 0, 0, 9, 1, 2}, flags: flagPriority, want: []byte{1, 2}, ok: true},
		{name: "short priority", p: []byte{0, 0, 0, 0}, flags: flagPriority},
		{name: "both", p: []byte{1, 0, 0, 0, 0, 9, 7, 0}, flags: flagPadded | flagPriority, want: []byte{7}, ok: true},
		{name: "both pad too long", p: []byte{3, 0, 0, 0, 0, 9, 7, 0}, flags: flagPadded | flagPriority},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := fragment(tt.p, tt.flags)
			if ok != tt.ok || !bytes.Equal(got, tt.want) {
				t.Errorf("fragment = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
