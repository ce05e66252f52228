package h2guard

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzFrames feeds a screen the client preface and then well-formed
// frames built from data by buildFrames, so that fuzzing spends its time
// in the screen's state machine (streams, header blocks, budgets) rather
// than on frame layout, with the checks of checkScreen.
func FuzzFrames(f *testing.F) {
	for _, seed := range [][]byte{
		// Rapid reset: requests on streams 1, 3, 5, ... each reset.
		bytes.Repeat([]byte{0, 0x05, 0, 0, 3, 0, 0, 0, 0, 0x05, 1, 0, 3, 0, 1, 0, 0, 0x05, 2, 0, 3, 0, 2, 0}, 2),
		// MadeYouReset: a request, then a WINDOW_UPDATE of 0, DATA after
		// END_STREAM, a stream depending on itself.
		{0, 0x04, 0, 0, 4, 0, 0, 0, 0, 0x05, 1, 0, 2, 0, 1, 3, 0, 0x04, 2, 0, 5, 0, 2, 0, 0, 0x05, 3, 0, 2, 0, 3, 0, 2, 0, 3, 0},
		// MadeYouReset: requests declaring a body of 3 bytes, then 5.
		{0, 0x04, 0, 7, 2, 0, 0, 5, 0, 0x04, 1, 7, 2, 0, 1, 5, 0, 0x04, 2, 7, 2, 0, 2, 5, 0, 0x04, 3, 7, 2, 0, 3, 5, 0, 0x04, 4, 7, 2, 0, 4, 5},
		// Ping, SETTINGS and WINDOW_UPDATE floods.
		bytes.Repeat([]byte{6, 0, 0, 0}, 6),
		bytes.Repeat([]byte{7, 0, 0, 1}, 6),
		bytes.Repeat([]byte{4, 0x80, 0, 1}, 6),
		// CONTINUATION flood.
		append([]byte{0, 0x01, 0, 0}, bytes.Repeat([]byte{1, 0, 0, 0}, 6)...),
		// HPACK bomb: a request with a large field, then references to it.
		{0, 0x05, 0, 4, 8, 0, 1, 60},
		// A malformed request in a CONTINUATION.
		{0, 0x01, 0, 0, 1, 0, 0, 1, 1, 0x04, 0, 3},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScreen(t, append([]byte(http2.ClientPreface), buildFrames(t, data)...))
	})
}

// buildFrames turns data into frames, four bytes at a time: a kind, flags,
// a stream (one of the client's first eight) and an argument.
func buildFrames(t *testing.T, data []byte) []byte {
	var b, block bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.AllowIllegalWrites = true
	enc := hpack.NewEncoder(&block)
	encode := func(fields ...string) []byte {
		block.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(block.Bytes())
	}
	extra := func(arg byte) []string {
		switch arg % 8 {
		case 1:
			return []string{"te", "trailers"}
		case 2:
			return []string{"te", "gzip"}
		case 3:
			return []string{"connection", "close"}
		case 4:
			return []string{"x-big", string(bytes.Repeat([]byte("v"), 200))}
		case 5:
			return []string{"x-n", fmt.Sprint(arg)}
		case 6:
			return []string{"x-huge", string(bytes.Repeat([]byte("h"), 2000))} // over MaxBlock
		case 7:
			return []string{"content-length", fmt.Sprint(arg % 4)}
		}
		return nil
	}
	get := []string{":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"}
	check := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for len(data) >= 4 {
		kind, flags, id, arg := data[0], http2.Flags(data[1]), uint32(data[2]%8)*2+1, data[3]
		data = data[4:]
		switch kind % 10 {
		case 0: // a request
			frag := encode(append(get, extra(arg)...)...)
			check(fr.WriteRawFrame(http2.FrameHeaders, flags&(http2.FlagHeadersEndStream|http2.FlagHeadersEndHeaders), id, frag))
		case 1: // the rest of a header block
			check(fr.WriteRawFrame(http2.FrameContinuation, flags&http2.FlagContinuationEndHeaders, id, encode(extra(arg)...)))
		case 2:
			check(fr.WriteRawFrame(http2.FrameData, flags&http2.FlagDataEndStream, id, make([]byte, arg%16)))
		case 3:
			check(fr.WriteRSTStream(id, http2.ErrCode(arg%14)))
		case 4: // on the connection when flags has its top bit
			if flags&0x80 != 0 {
				id = 0
			}
			check(fr.WriteWindowUpdate(id, uint32(arg)<<(flags%24)))
		case 5: // on itself when arg is even
			dep := id
			if arg%2 == 1 {
				dep = uint32(arg)
			}
			check(fr.WritePriority(id, http2.PriorityParam{StreamDep: dep, Weight: arg}))
		case 6:
			check(fr.WritePing(flags&http2.FlagPingAck != 0, [8]byte{arg}))
		case 7:
			if flags&http2.FlagSettingsAck != 0 {
				check(fr.WriteSettingsAck())
				break
			}
			var ss []http2.Setting
			for i := range arg % 4 {
				ss = append(ss, http2.Setting{ID: http2.SettingID(1 + i), Val: uint32(arg) << 8})
			}
			check(fr.WriteSettings(ss...))
		case 8: // references to the newest dynamic table entry
			frag := append(encode(get...), bytes.Repeat([]byte{0x80 | 62}, int(arg))...)
			check(fr.WriteRawFrame(http2.FrameHeaders, flags&(http2.FlagHeadersEndStream|http2.FlagHeadersEndHeaders), id, frag))
		default: // anything, with the argument's length of the data that follows
			n := min(int(arg%32), len(data))
			check(fr.WriteRawFrame(http2.FrameType(flags%12), http2.Flags(arg), id, data[:n]))
			data = data[n:]
		}
	}
	return b.Bytes()
}
