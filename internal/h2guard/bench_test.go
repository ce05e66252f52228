package h2guard

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// loopReader yields head once, then loop over and over; each time round,
// loop's frames move to the client's next stream, as a real client's
// requests do.
type loopReader struct {
	head, loop []byte
	off        int
	stream     uint32
}

func (r *loopReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	if r.off == 0 {
		r.stream += 2
		for f := r.loop; len(f) >= headerLen; f = f[headerLen+int(binary.BigEndian.Uint32(f)>>8):] {
			binary.BigEndian.PutUint32(f[5:], r.stream)
		}
	}
	n := copy(p, r.loop[r.off:])
	r.off = (r.off + n) % len(r.loop)
	return n, nil
}

// requestStream returns the start of a client connection (preface,
// SETTINGS and a first request that fills the HPACK table) and a request
// to repeat after it: a HEADERS frame whose fields are all indexed and a
// DATA frame of 1 KiB.
func requestStream(tb testing.TB) (head, loop []byte) {
	var b, block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "www.example.com"}, {Name: ":path", Value: "/api/v1/items"},
		{Name: "user-agent", Value: "bench/1.0"}, {Name: "accept", Value: "application/json"},
		{Name: "content-type", Value: "application/json"}, {Name: "te", Value: "trailers"},
		{Name: "cookie", Value: "session=0123456789abcdef0123456789abcdef"},
	}
	encode := func() []byte {
		block.Reset()
		for _, f := range fields {
			enc.WriteField(f)
		}
		return bytes.Clone(block.Bytes())
	}
	fr := http2.NewFramer(&b, nil)
	b.WriteString(http2.ClientPreface)
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}); err != nil {
		tb.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode(), EndHeaders: true}); err != nil {
		tb.Fatal(err)
	}
	head = bytes.Clone(b.Bytes())
	b.Reset()
	// One request repeats, on stream 3, 5, ... (see loopReader).
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: encode(), EndHeaders: true}); err != nil {
		tb.Fatal(err)
	}
	if err := fr.WriteData(3, true, make([]byte, 1<<10)); err != nil {
		tb.Fatal(err)
	}
	return head, bytes.Clone(b.Bytes())
}

// frameReader reads frames from r as the HTTP/2 server's framer does: a
// 9-byte header, then the payload.
type frameReader struct {
	r   io.Reader
	buf [headerLen + 16<<10]byte
}

// next reads one frame.
func (f *frameReader) next(tb testing.TB) {
	if _, err := io.ReadFull(f.r, f.buf[:headerLen]); err != nil {
		tb.Fatal(err)
	}
	n := int(binary.BigEndian.Uint32(f.buf[:4]) >> 8)
	if _, err := io.ReadFull(f.r, f.buf[headerLen:headerLen+n]); err != nil {
		tb.Fatal(err)
	}
}

// benchmarkRead reads the repeated request, a HEADERS and a DATA frame per
// op, through wrap.
func benchmarkRead(b *testing.B, wrap func(io.Reader) io.Reader) {
	head, loop := requestStream(b)
	fr := &frameReader{r: wrap(&loopReader{head: head, loop: loop, stream: 1})}
	io.ReadFull(fr.r, fr.buf[:len(http2.ClientPreface)])
	fr.next(b) // SETTINGS
	fr.next(b) // the first HEADERS
	b.SetBytes(int64(len(loop)))
	b.ReportAllocs()
	for b.Loop() {
		fr.next(b)
		fr.next(b)
	}
}

// BenchmarkRead is a request through a screen: a HEADERS frame decoded
// and checked, a DATA frame passed through.
func BenchmarkRead(b *testing.B) {
	benchmarkRead(b, func(r io.Reader) io.Reader { return newScreen(r, Limits{}) })
}

// BenchmarkReadBare is BenchmarkRead without the screen, for comparison.
func BenchmarkReadBare(b *testing.B) {
	benchmarkRead(b, func(r io.Reader) io.Reader { return r })
}
