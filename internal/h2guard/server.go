package h2guard

//lint:file-ignore SA1019 golang.org/x/net/http2's server is deprecated in favour of net/http's, which cannot serve a wrapped connection.

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net/http"

	"golang.org/x/net/http2"
)

// Configure makes hs serve HTTP/2 over TLS with golang.org/x/net/http2's
// server, reading each connection through Wrap with the default budgets.
// The server takes its settings from hs.HTTP2 (a nil one means Go's
// defaults) and hs, as net/http's own would; it sends GOAWAY on
// hs.Shutdown. A connection closed for an attack is logged to hs.ErrorLog.
// Configure must be called before hs serves, once, after hs.TLSConfig,
// hs.HTTP2 and hs.MaxHeaderBytes are set.
func Configure(hs *http.Server) error { return ConfigureLimits(hs, Limits{}) }

// ConfigureLimits is Configure with the budgets (Resets, Pings, Settings,
// WindowUpdates, MaxContinuations), MaxBlock, Clock and OnCalm of b (zero
// fields take the defaults); the settings the guard must agree with are
// taken from hs whatever b says. OnCalm is called after the log line.
func ConfigureLimits(hs *http.Server, b Limits) error {
	conf := new(http2.Server)
	if err := http2.ConfigureServer(hs, conf); err != nil {
		return fmt.Errorf("configure http/2: %w", err)
	}
	// What ConfigureServer registers, with the connection wrapped. The
	// handler net/http passes carries the connection's base context.
	if hs.TLSNextProto == nil {
		hs.TLSNextProto = make(map[string]func(*http.Server, *tls.Conn, http.Handler))
	}
	hs.TLSNextProto[http2.NextProtoTLS] = func(hs *http.Server, c *tls.Conn, h http.Handler) {
		var ctx context.Context
		if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
			ctx = bc.BaseContext()
		}
		l := limits(hs)
		l.MaxBlock, l.MaxContinuations, l.Clock = b.MaxBlock, b.MaxContinuations, b.Clock
		l.Resets, l.Pings, l.Settings, l.WindowUpdates = b.Resets, b.Pings, b.Settings, b.WindowUpdates
		l.OnCalm = func(attack string) {
			logf(hs, "h2guard: closing connection from %v with ENHANCE_YOUR_CALM: %s", c.RemoteAddr(), attack)
			if b.OnCalm != nil {
				b.OnCalm(attack)
			}
		}
		conf.ServeConn(Wrap(c, l), &http2.ServeConnOpts{
			Context:    ctx,
			Handler:    h,
			BaseConfig: hs,
		})
	}
	return nil
}

// logf logs to hs.ErrorLog, or to the log package's standard logger when
// it is nil, as net/http and golang.org/x/net/http2 do.
func logf(hs *http.Server, format string, args ...any) {
	if hs.ErrorLog != nil {
		hs.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// limits returns the limits of the server golang.org/x/net/http2 runs for
// hs, resolving hs.HTTP2 and hs.MaxHeaderBytes the way it does (its
// config.go and server.go); the budgets are the defaults.
func limits(hs *http.Server) Limits {
	l := Limits{HeaderTableSize: defaultHeaderTableSize, MaxFrameSize: 1 << 20}
	n := hs.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	l.MaxHeaderListSize = uint32(min(n+10*32, 1<<32-1))
	if c := hs.HTTP2; c != nil {
		if c.MaxDecoderHeaderTableSize != 0 {
			l.HeaderTableSize = uint32(c.MaxDecoderHeaderTableSize)
		}
		if c.MaxReadFrameSize != 0 {
			l.MaxFrameSize = uint32(c.MaxReadFrameSize)
		}
	}
	if l.MaxFrameSize < 16<<10 || l.MaxFrameSize > 1<<24-1 {
		l.MaxFrameSize = 1 << 20
	}
	return l
}
