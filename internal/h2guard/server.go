package h2guard

//lint:file-ignore SA1019 golang.org/x/net/http2's server is deprecated in favour of net/http's, which cannot serve a wrapped connection.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"golang.org/x/net/http2"
)

// Configure makes hs serve HTTP/2 over TLS with golang.org/x/net/http2's
// server, reading each connection through Wrap. The server takes its
// settings from hs.HTTP2 (a nil one means Go's defaults) and hs, as
// net/http's own would; it sends GOAWAY on hs.Shutdown. Configure must be
// called before hs serves, once, after hs.TLSConfig and hs.HTTP2 are set.
func Configure(hs *http.Server) error {
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
		conf.ServeConn(Wrap(c, limits(hs)), &http2.ServeConnOpts{
			Context:    ctx,
			Handler:    h,
			BaseConfig: hs,
		})
	}
	return nil
}

// limits returns the limits of the server golang.org/x/net/http2 runs for
// hs, resolving hs.HTTP2 the way it does (its config.go).
func limits(hs *http.Server) Limits {
	l := Limits{HeaderTableSize: defaultHeaderTableSize, MaxFrameSize: 1 << 20}
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
