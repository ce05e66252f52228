package h2guard

import "encoding/binary"

// This file holds the screen's budgets: which client frames spend them,
// and what happens when one runs out.

// spend takes a token from b and reports whether there was one; when
// there was not, the client is calmed for attack.
func (s *screen) spend(b *bucket, attack string) bool {
	if b.take(s.lim.Clock) {
		return true
	}
	s.calm(attack)
	return false
}

// calm ends the stream the server reads with errCalm in place of the
// frame whose header is in s.hdr (and whatever of it was held), so that
// the server sends GOAWAY with ENHANCE_YOUR_CALM and closes the
// connection; it reports attack to Limits.OnCalm.
func (s *screen) calm(attack string) {
	s.out, s.left, s.err = nil, 0, errCalm
	s.mode, s.block, s.calmed = modeRejected, 0, attack
	if s.lim.OnCalm != nil {
		s.lim.OnCalm(attack)
	}
}

// open notes a HEADERS frame with flags on stream and reports whether the
// connection goes on. HEADERS on a stream the client has ended makes the
// server reset the stream (RFC 9113 5.1, STREAM_CLOSED), or close the
// connection.
func (s *screen) open(flags byte, stream uint32) bool {
	switch {
	case stream > s.streams.max:
		s.streams.open(stream)
	case s.streams.ended(stream):
		if !s.spend(&s.resets, AttackMadeYouReset) {
			return false
		}
	}
	if flags&flagEndStream != 0 {
		s.streams.end(stream)
	}
	return true
}

// data notes a DATA frame with flags and a payload of length on stream.
// DATA on a stream the client has ended makes the server reset the stream
// (RFC 9113 6.1, STREAM_CLOSED), and so does DATA past the content-length
// the request declared (8.1.1, PROTOCOL_ERROR).
func (s *screen) data(flags byte, stream uint32, length int) {
	if s.streams.ended(stream) && !s.spend(&s.resets, AttackMadeYouReset) {
		return
	}
	if left, ok := s.bodies[stream]; ok {
		switch {
		case flags&flagPadded != 0:
			delete(s.bodies, stream) // padding is not body; not worth reading
		case int64(length) > left:
			delete(s.bodies, stream)
			if !s.spend(&s.resets, AttackMadeYouReset) {
				return
			}
		default:
			s.bodies[stream] = left - int64(length)
		}
	}
	if flags&flagEndStream != 0 {
		s.streams.end(stream)
		delete(s.bodies, stream)
	}
}

// maxBodies is how many declared request bodies a screen follows at once:
// more than the server's concurrent streams (250 by default).
const maxBodies = 256

// declare notes that the request on stream declared a body of length
// bytes, when fewer than maxBodies are followed. A stream the client left
// unended (the server may have ended it) is forgotten when it leaves the
// streams' window.
func (s *screen) declare(stream uint32, length int64) {
	if s.bodies == nil {
		s.bodies = make(map[uint32]int64)
	}
	if len(s.bodies) >= maxBodies {
		for id := range s.bodies {
			if !s.streams.known(id) {
				delete(s.bodies, id)
			}
		}
	}
	if len(s.bodies) < maxBodies {
		s.bodies[stream] = length
	}
}

// windowUpdate holds a WINDOW_UPDATE frame on stream with the header in
// s.hdr and spends its budget. An increment of 0 on a stream makes the
// server reset the stream (RFC 9113 6.9, PROTOCOL_ERROR); on the
// connection it closes the connection. An increment under smallIncrement
// makes the server send DATA in small pieces (the "data dribble" of
// CVE-2019-9511).
func (s *screen) windowUpdate(stream uint32) {
	b, ok := s.held(4)
	if !ok {
		return
	}
	s.out = b
	switch inc := binary.BigEndian.Uint32(b[headerLen:]) & (1<<31 - 1); {
	case inc == 0 && stream != 0:
		s.spend(&s.resets, AttackMadeYouReset)
	case inc < smallIncrement:
		s.spend(&s.updates, AttackWindowUpdateFlood)
	}
}

// priority holds a PRIORITY frame on stream with the header in s.hdr. A
// stream that depends on itself makes the server reset it (RFC 9113
// 5.3.1, PROTOCOL_ERROR).
func (s *screen) priority(stream uint32) {
	b, ok := s.held(5)
	if !ok {
		return
	}
	s.out = b
	if binary.BigEndian.Uint32(b[headerLen:])&(1<<31-1) == stream {
		s.spend(&s.resets, AttackMadeYouReset)
	}
}

// streamWindow is how many of the client's most recent streams a screen
// remembers the state of.
const streamWindow = 1024

// streams remembers which of the client's streamWindow most recent
// streams the client has ended, with END_STREAM or RST_STREAM: a frame
// other than WINDOW_UPDATE, PRIORITY or RST_STREAM on one of them is a
// stream error of type STREAM_CLOSED (RFC 9113 5.1). Older streams are
// forgotten, so a frame on one spends nothing. The zero value is ready to
// use.
type streams struct {
	max  uint32                    // the highest stream the client opened
	done [streamWindow / 64]uint64 // bit slot(id): stream id has ended
}

// seq returns the place of client stream id among the client's streams:
// 1 for stream 1, 2 for stream 3, and so on; 0 before them.
func seq(id uint32) uint32 { return (id + 1) / 2 }

// slot returns the index of the bit of stream id.
func slot(id uint32) uint32 { return seq(id) % streamWindow }

// known reports whether stream id has been opened and is recent enough to
// be remembered.
func (w *streams) known(id uint32) bool {
	return id != 0 && id <= w.max && seq(w.max)-seq(id) < streamWindow
}

// open notes that the client opened stream id, greater than w.max: the
// streams between are idle, then closed, to the server, which is not
// remembered.
func (w *streams) open(id uint32) {
	if seq(id)-seq(w.max) >= streamWindow {
		w.done = [streamWindow / 64]uint64{}
	} else {
		for x := seq(w.max) + 1; x <= seq(id); x++ {
			i := x % streamWindow
			w.done[i/64] &^= 1 << (i % 64)
		}
	}
	w.max = id
}

// end notes that the client ended stream id.
func (w *streams) end(id uint32) {
	if w.known(id) {
		i := slot(id)
		w.done[i/64] |= 1 << (i % 64)
	}
}

// ended reports whether the client ended stream id, as far as w knows.
func (w *streams) ended(id uint32) bool {
	if !w.known(id) {
		return false
	}
	i := slot(id)
	return w.done[i/64]&(1<<(i%64)) != 0
}
