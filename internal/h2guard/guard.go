package h2guard

import (
	"crypto/tls"
	"net"

	"fronttier/internal/clock"
)

// Limits are the server settings the guard must agree with, and the
// budgets it holds each connection to. Zero fields take the defaults.
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
	// one passes through and ends header screening for the connection
	// (the budgets stay). Zero means 64 KiB.
	MaxBlock int
	// MaxHeaderListSize is the SETTINGS_MAX_HEADER_LIST_SIZE the server
	// advertises: a header block that decodes to more is refused by the
	// server (431), and is an HPACK bomb when it decodes to more than 16
	// times its size on the wire. Zero means x/net's default for net/http's
	// (1 MiB and 320 bytes).
	MaxHeaderListSize uint32
	// MaxContinuations is the most CONTINUATION frames a header block may
	// have (CONTINUATION flood). Zero means 64; negative, no limit.
	MaxContinuations int

	// Resets budgets the streams the client resets (RST_STREAM, rapid
	// reset) and makes the server reset (MadeYouReset): zero means 500 at
	// once, 50 a second.
	Resets Rate
	// Pings budgets PING frames: zero means 100 at once, 10 a second.
	Pings Rate
	// Settings budgets SETTINGS frames (not acknowledgements): zero means
	// 100 at once, 2 a second.
	Settings Rate
	// WindowUpdates budgets WINDOW_UPDATE frames with an increment under
	// 1 KiB: zero means 1000 at once, 100 a second.
	WindowUpdates Rate

	// Clock refills the budgets; nil means the system clock.
	Clock clock.Clock
	// OnCalm, if set, is called with the attack (one of the Attack
	// constants) when the guard closes a connection for spending a
	// budget, from the goroutine reading the connection.
	OnCalm func(attack string)
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
	if l.MaxHeaderListSize == 0 {
		l.MaxHeaderListSize = defaultMaxHeaderListSize
	}
	switch {
	case l.MaxContinuations == 0:
		l.MaxContinuations = defaultMaxContinuations
	case l.MaxContinuations < 0:
		l.MaxContinuations = int(^uint(0) >> 1)
	}
	l.Resets = l.Resets.orDefault(defaultResets)
	l.Pings = l.Pings.orDefault(defaultPings)
	l.Settings = l.Settings.orDefault(defaultSettings)
	l.WindowUpdates = l.WindowUpdates.orDefault(defaultWindowUpdates)
	if l.Clock == nil {
		l.Clock = clock.System{}
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
