// Package h2guard screens what an HTTP/2 client sends before Go's HTTP/2
// server reads it, to fix two places where that server departs from RFC
// 9113:
//
//   - A SETTINGS frame that repeats a parameter is processed in order
//     (RFC 9113 6.5.3); Go's server hangs up on it instead. The guard
//     rewrites such a frame to one entry per parameter, which leaves the
//     server in the state processing in order would.
//   - A request carrying a connection-specific field (connection,
//     proxy-connection, keep-alive, transfer-encoding, upgrade) or a TE
//     other than "trailers" is malformed (RFC 9113 8.2.2) and must be
//     treated as a stream error of type PROTOCOL_ERROR (8.1.1); Go's server
//     answers it with a 400 instead. The guard hands the server an empty
//     DATA frame on stream 0 in place of the header block, which the server
//     answers with a connection error of type PROTOCOL_ERROR (6.1) - a
//     stream error may be treated as one (5.4.1) - so the server itself
//     sends GOAWAY and closes. The guard never writes to the connection.
//
// Every other byte passes through unchanged, so the server's HPACK decoder
// sees exactly what the client encoded. The guard keeps a decoder of its own
// in step with it; when it cannot (a header block over its limit, a
// decoding error, a frame it cannot follow) it stops screening for the rest
// of the connection and the server's own checks apply.
package h2guard

import (
	"crypto/tls"
	"net"
)

// Limits are the server settings the guard must agree with.
type Limits struct {
	// HeaderTableSize is the dynamic table size of the server's HPACK
	// decoder (the SETTINGS_HEADER_TABLE_SIZE it advertises); zero means
	// RFC 9113's default, 4096.
	HeaderTableSize uint32
	// MaxFrameSize is the largest frame payload the server reads (the
	// SETTINGS_MAX_FRAME_SIZE it advertises); larger frames pass through
	// for the server to refuse. Zero means 16 KiB.
	MaxFrameSize uint32
	// MaxBlock is the largest header block screened, in bytes; a larger
	// one passes through and ends screening for the connection. Zero
	// means 64 KiB.
	MaxBlock int
}

// Default limits.
const (
	defaultHeaderTableSize = 4096
	defaultMaxFrameSize    = 16 << 10
	defaultMaxBlock        = 64 << 10
)

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.HeaderTableSize == 0 {
		l.HeaderTableSize = defaultHeaderTableSize
	}
	if l.MaxFrameSize == 0 {
		l.MaxFrameSize = defaultMaxFrameSize
	}
	if l.MaxBlock <= 0 {
		l.MaxBlock = defaultMaxBlock
	}
	return l
}

// Conn is a TLS connection whose reads are screened: Read yields the
// client's bytes as the HTTP/2 server should see them; every other method
// is the *tls.Conn's, including ConnectionState, which the HTTP/2 server
// uses to fill Request.TLS and enforce RFC 9113's TLS rules.
type Conn struct {
	*tls.Conn
	s *screen
}

var _ net.Conn = (*Conn)(nil)

// Wrap returns c with its reads screened for a server with limits l. It
// must be read from the start of the HTTP/2 connection (the client
// preface).
func Wrap(c *tls.Conn, l Limits) *Conn {
	return &Conn{Conn: c, s: newScreen(c, l)}
}

// Read reads the client's bytes, screened.
func (c *Conn) Read(p []byte) (int, error) {
	return c.s.Read(p)
}
