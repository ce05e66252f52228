package h2guard

import (
	"encoding/binary"
	"io"
	"strconv"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Frame layout (RFC 9113 4.1, 6).
const (
	headerLen = 9 // length(3) type(1) flags(1) stream(4)

	typeData         = 0x0
	typeHeaders      = 0x1
	typePriority     = 0x2
	typeRSTStream    = 0x3
	typeSettings     = 0x4
	typePing         = 0x6
	typeWindowUpdate = 0x8
	typeContinuation = 0x9

	flagAck        = 0x1
	flagEndStream  = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// errCalm is what Read returns in place of the frame that spent a budget
// to its end. golang.org/x/net/http2's server answers a read error of type
// ConnectionError as it answers one it detects itself: it sends GOAWAY
// with that code and closes the connection.
const errCalm = http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)

// mode is what a screen does with the frames it reads.
type mode uint8

const (
	modePreface  mode = iota // expecting the client preface
	modeScreen               // reading frames, screening some
	modePass                 // passing everything through unchanged
	modeRejected             // a malformed request was replaced, or the client calmed; discarding
)

// screen reads an HTTP/2 client's byte stream from r and yields it frame by
// frame, rewriting SETTINGS frames with repeated parameters, replacing a
// malformed request's header block with a frame the server refuses with a
// connection error, and ending the stream with errCalm when the client
// spends a budget (see budget.go). A screen is used by one reader at a
// time.
type screen struct {
	r   io.Reader
	lim Limits
	dec *hpack.Decoder // in step with the server's decoder while hpack

	mode  mode
	hpack bool   // header blocks are decoded and screened
	out   []byte // bytes to yield before reading more: a window on hdr or buf
	left  int    // payload bytes of the current frame to copy straight from r
	err   error  // error to report once out is drained

	hdr [headerLen]byte
	buf []byte // a held frame, header included; reused

	block    uint32 // stream of the header block in progress; 0 if none
	blockLen int    // fragment bytes of that block so far
	listSize int    // its decoded size so far (RFC 7541 4.1), up to the limit
	conts    int    // its CONTINUATION frames so far
	bad      bool   // it has a connection-specific field
	length   int64  // its first content-length, or -1 (0 if not a number, as the server has it)
	body     bool   // it opens a stream with a body to come

	// Per-connection budgets (see Limits).
	resets, pings, settingsB, updates bucket
	streams                           streams
	// bodies holds, for streams whose request declared a content-length,
	// how many body bytes may follow; at most maxBodies of them. Nil
	// until the first.
	bodies map[uint32]int64

	rewrites int    // SETTINGS frames rewritten, for tests
	calmed   string // the attack the stream was ended for; "" if none
}

// newScreen returns a screen of the client bytes read from r, for a server
// with limits l.
func newScreen(r io.Reader, l Limits) *screen {
	s := &screen{r: r, lim: l.withDefaults(), hpack: true}
	s.dec = hpack.NewDecoder(s.lim.HeaderTableSize, s.field)
	s.dec.SetMaxStringLength(s.lim.MaxBlock)
	now := s.lim.Clock.Now()
	s.resets = newBucket(s.lim.Resets, now)
	s.pings = newBucket(s.lim.Pings, now)
	s.settingsB = newBucket(s.lim.Settings, now)
	s.updates = newBucket(s.lim.WindowUpdates, now)
	return s
}

// Read yields the next screened bytes.
func (s *screen) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(s.out) > 0 {
			n := copy(p, s.out)
			s.out = s.out[n:]
			return n, nil
		}
		if s.err != nil {
			return 0, s.err
		}
		if s.left > 0 {
			if len(p) > s.left {
				p = p[:s.left]
			}
			n, err := s.r.Read(p)
			s.left -= n
			return n, err
		}
		switch s.mode {
		case modePreface:
			s.preface()
		case modeScreen:
			s.frame()
		case modePass:
			return s.r.Read(p)
		default:
			return 0, s.discard(p)
		}
	}
}

// preface reads the client preface; anything else ends screening (the
// server refuses it).
func (s *screen) preface() {
	n := len(http2.ClientPreface)
	b := s.hold(n)
	if !s.fill(b) {
		return
	}
	s.out = b
	if string(b) == http2.ClientPreface {
		s.mode = modeScreen
	} else {
		s.mode = modePass
	}
}

// frame reads a frame header and decides what to do with the frame. A
// frame the server answers with a connection error ends screening.
func (s *screen) frame() {
	if !s.fill(s.hdr[:]) {
		return
	}
	length := int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
	typ, flags := s.hdr[3], s.hdr[4]
	stream := binary.BigEndian.Uint32(s.hdr[5:]) & (1<<31 - 1)
	s.out, s.left = s.hdr[:], length
	if length > int(s.lim.MaxFrameSize) || s.block != 0 && (typ != typeContinuation || stream != s.block) {
		// Refused: a frame over the server's maximum size, a header block
		// interrupted.
		s.mode = modePass
		return
	}
	switch typ {
	case typeHeaders, typeContinuation:
		s.headers(typ, flags, stream, length)
	case typeData:
		s.data(flags, stream, length)
	case typeSettings:
		if flags&flagAck == 0 && stream == 0 && s.spend(&s.settingsB, AttackSettingsFlood) &&
			length%settingLen == 0 && length <= maxSettings*settingLen {
			s.settings(length)
		}
	case typePing:
		if flags&flagAck == 0 && stream == 0 && length == 8 {
			s.spend(&s.pings, AttackPingFlood)
		}
	case typeRSTStream:
		if stream != 0 && length == 4 && s.spend(&s.resets, AttackRapidReset) {
			s.streams.end(stream)
			delete(s.bodies, stream)
		}
	case typeWindowUpdate:
		if length == 4 {
			s.windowUpdate(stream)
		}
	case typePriority:
		if stream != 0 && length == 5 {
			s.priority(stream)
		}
	}
}

// settings holds a SETTINGS frame with the header in s.hdr and rewrites it
// when it repeats a parameter.
func (s *screen) settings(length int) {
	b, ok := s.held(length)
	if !ok {
		return
	}
	if n := dedupe(b[headerLen:]); n < length {
		b[0], b[1], b[2] = byte(n>>16), byte(n>>8), byte(n)
		b = b[:headerLen+n]
		s.rewrites++
	}
	s.out = b
}

// headers handles a HEADERS or CONTINUATION frame with the header in
// s.hdr: it counts the frame against the stream's state and the block's
// CONTINUATION limit and, while screening header blocks, holds the frame,
// decodes its fragment and replaces it when the request is malformed or
// the block a bomb. Frames it cannot decode the way the server does pass
// through and end header screening (but not the budgets).
func (s *screen) headers(typ, flags byte, stream uint32, length int) {
	if typ == typeContinuation && s.block == 0 || stream == 0 {
		s.mode = modePass // refused by the server
		return
	}
	if typ == typeHeaders {
		s.blockLen, s.listSize, s.conts, s.bad, s.length = 0, 0, 0, false, -1
		s.body = stream > s.streams.max && flags&flagEndStream == 0
		if !s.open(flags, stream) {
			return
		}
	} else if s.conts++; s.conts > s.lim.MaxContinuations {
		s.calm(AttackContinuationFlood)
		return
	}
	s.block = stream
	if flags&flagEndHeaders != 0 {
		s.block = 0
	}
	if !s.hpack {
		return
	}
	if length > s.lim.MaxBlock {
		s.hpack = false // not worth holding
		return
	}
	b, ok := s.held(length)
	if !ok {
		return
	}
	s.out = b
	frag := b[headerLen:]
	if typ == typeHeaders {
		if frag, ok = fragment(frag, flags); !ok {
			// The server does not decode a malformed HEADERS frame.
			s.hpack = false
			return
		}
		s.dec.SetEmitEnabled(true)
	}
	s.blockLen += len(frag)
	if s.blockLen > s.lim.MaxBlock {
		s.hpack = false
		return
	}
	if _, err := s.dec.Write(frag); err != nil {
		s.hpack = false
		return
	}
	if s.listSize > int(s.lim.MaxHeaderListSize) && s.listSize > hpackBombRatio*s.blockLen {
		s.calm(AttackHPACKBomb)
		return
	}
	if s.bad {
		s.reject()
		return
	}
	if flags&flagEndHeaders != 0 {
		if err := s.dec.Close(); err != nil {
			s.hpack = false
			return
		}
		if s.body && s.length >= 0 {
			s.declare(stream, s.length)
		}
	}
}

// fragment returns the header block fragment of a HEADERS frame's payload p
// with flags, without its padding and priority, and false when the server's
// framer would not decode it.
func fragment(p []byte, flags byte) ([]byte, bool) {
	pad := 0
	if flags&flagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad, p = int(p[0]), p[1:]
	}
	if flags&flagPriority != 0 {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, false
	}
	return p[:len(p)-pad], true
}

// field adds a decoded header field to the block's size and notes one
// that makes a request malformed (RFC 9113 8.2.2). An empty TE is let through, as Go's server does: it lists
// no coding other than trailers.
func (s *screen) field(f hpack.HeaderField) {
	// The block's decoded size, bounded: past the server's limit the
	// block is refused (or a bomb), so its fields need no more work.
	if s.listSize += int(f.Size()); s.listSize > int(s.lim.MaxHeaderListSize) {
		s.dec.SetEmitEnabled(false)
		return
	}
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		s.bad = true
	case "content-length":
		if s.length < 0 {
			s.length = 0 // the server's value for one that is not a number
			if n, err := strconv.ParseUint(f.Value, 10, 63); err == nil {
				s.length = int64(n)
			}
		}
	case "te":
		if f.Value != "trailers" && f.Value != "" {
			s.bad = true
		}
	}
}

// reject replaces the frame held in s.out by an empty DATA frame on stream
// 0, which the server answers with a connection error of type
// PROTOCOL_ERROR (RFC 9113 6.1), and stops passing anything more.
func (s *screen) reject() {
	s.hdr = [headerLen]byte{3: typeData}
	s.out = s.hdr[:]
	s.mode = modeRejected
	s.block = 0
}

// discard reads and drops the client's bytes until reading fails, using p
// as scratch, and returns that error.
func (s *screen) discard(p []byte) error {
	for {
		if _, err := s.r.Read(p); err != nil {
			return err
		}
	}
}

// held reads the frame whose header is in s.hdr, with a payload of length
// bytes, into s.buf and returns it, header included. On failure it sets
// s.out to the bytes read and s.err to the error, and returns false.
func (s *screen) held(length int) ([]byte, bool) {
	b := s.hold(headerLen + length)
	copy(b, s.hdr[:])
	s.left = 0
	n, err := io.ReadFull(s.r, b[headerLen:])
	if err != nil {
		s.out, s.err = b[:headerLen+n], err
		return nil, false
	}
	return b, true
}

// hold returns s.buf resized to n bytes, growing it when needed.
func (s *screen) hold(n int) []byte {
	if cap(s.buf) < n {
		s.buf = make([]byte, n, max(n, 2*cap(s.buf)))
	}
	return s.buf[:n]
}

// fill reads len(b) bytes into b. On failure it sets s.out to what was read
// and s.err to the error, and returns false.
func (s *screen) fill(b []byte) bool {
	n, err := io.ReadFull(s.r, b)
	if err != nil {
		s.out, s.err = b[:n], err
		return false
	}
	return true
}
