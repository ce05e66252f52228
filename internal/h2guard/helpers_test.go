package h2guard

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"fronttier/internal/testutil"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// testCert returns a self-signed certificate for 127.0.0.1.
func testCert(t testing.TB) tls.Certificate { return testutil.SelfSigned(t, "127.0.0.1") }

// testServer is an HTTPS server configured by Configure, as fronttier's
// HTTPS listener is.
type testServer struct {
	hs   *http.Server
	addr string
}

// echo answers with status 200, x-tls: yes when r.TLS is set, x-n with the
// request's x-n, and a body of "hello".
func echo(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		w.Header().Set("x-tls", "yes")
	}
	w.Header().Set("x-n", r.Header.Get("x-n"))
	io.WriteString(w, "hello")
}

// startServer serves h over TLS on 127.0.0.1 until the test ends.
func startServer(t testing.TB, h http.Handler) *testServer {
	t.Helper()
	return startServerLimits(t, h, Limits{})
}

// startServerLimits is startServer with the guard's budgets in l (see
// ConfigureLimits).
func startServerLimits(t testing.TB, h http.Handler, l Limits) *testServer {
	t.Helper()
	hs := &http.Server{
		Handler:   h,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{testCert(t)}},
		HTTP2:     &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	if err := ConfigureLimits(hs, l); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{hs: hs, addr: ln.Addr().String()}
}

// client is a raw HTTP/2 client: a framer and an HPACK encoder over a TLS
// connection.
type client struct {
	t        testing.TB
	c        *tls.Conn
	fr       *http2.Framer
	enc      *hpack.Encoder
	block    bytes.Buffer
	settings []http2.Setting // the server's initial SETTINGS
	// stopAtData makes read return after the first DATA frame.
	stopAtData bool
}

// dial connects to s, negotiating h2, and sends the preface and settings
// (none when nil).
func dial(t testing.TB, s *testServer, settings ...http2.Setting) *client {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cl := &client{t: t, c: c, fr: http2.NewFramer(c, c)}
	cl.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cl.enc = hpack.NewEncoder(&cl.block)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := cl.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return cl
}

// encode returns the HPACK encoding of a GET / with the extra fields, given
// as name, value pairs.
func (cl *client) encode(extra ...string) []byte {
	cl.block.Reset()
	fields := append([]string{":method", "GET", ":scheme", "https", ":authority", "127.0.0.1", ":path", "/"}, extra...)
	for i := 0; i < len(fields); i += 2 {
		if err := cl.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}); err != nil {
			cl.t.Fatal(err)
		}
	}
	return bytes.Clone(cl.block.Bytes())
}

// get sends a GET / on stream id with the extra fields in one HEADERS
// frame.
func (cl *client) get(id uint32, extra ...string) {
	cl.t.Helper()
	err := cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cl.encode(extra...),
		EndStream: true, EndHeaders: true})
	if err != nil {
		cl.t.Fatal(err)
	}
}

// result is how the server ended an exchange.
type result struct {
	status string // :status of the response, "" if none
	header http.Header
	data   []byte // the response body's DATA frames, in order
	frames []int  // the length of each DATA frame
	goAway *http2.GoAwayFrame
	reset  *http2.RSTStreamFrame
	eof    bool // the server closed the connection
	// answers counts the frames of each type read before the end (drain
	// only).
	answers map[http2.FrameType]int
}

// read reads frames until stream id ends, a GOAWAY or RST_STREAM arrives
// or the connection closes, acknowledging the server's SETTINGS.
func (cl *client) read(id uint32) result {
	cl.t.Helper()
	var r result
	for {
		f, err := cl.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				r.eof = true
				return r
			}
			cl.t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if cl.settings == nil {
				f.ForeachSetting(func(s http2.Setting) error {
					cl.settings = append(cl.settings, s)
					return nil
				})
			}
			if err := cl.fr.WriteSettingsAck(); err != nil {
				cl.t.Fatal(err)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			r.status = f.PseudoValue("status")
			r.header = http.Header{}
			for _, hf := range f.RegularFields() {
				r.header.Add(hf.Name, hf.Value)
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			r.data = append(r.data, f.Data()...)
			r.frames = append(r.frames, len(f.Data()))
			if f.StreamEnded() || cl.stopAtData {
				return r
			}
		case *http2.GoAwayFrame:
			g := *f
			g.FrameHeader = http2.FrameHeader{}
			r.goAway = &g
			return r
		case *http2.RSTStreamFrame:
			rs := *f
			r.reset = &rs
			return r
		}
	}
}

// isReset reports whether err is a connection reset by the peer.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// String summarises r.
func (r result) String() string {
	switch {
	case r.goAway != nil:
		return "GOAWAY " + r.goAway.ErrCode.String()
	case r.reset != nil:
		return "RST_STREAM " + r.reset.ErrCode.String()
	case r.status != "":
		return "status " + r.status
	case r.eof:
		return "closed"
	}
	return "nothing"
}

// shutdown calls hs.Shutdown and returns its error on the channel.
func shutdown(hs *http.Server) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- hs.Shutdown(ctx)
	}()
	return done
}

// want fails the test unless got summarises as w.
func want(t testing.TB, got result, w string) {
	t.Helper()
	if got.String() != w {
		t.Fatalf("got %s, want %s", got, w)
	}
}
