package proxy

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDifferentialBackends sends the same client requests through
// fronttier (internal/server and this package's Handler) and through
// net/http's server with httputil.ReverseProxy, each in front of its own
// copy of a scripted raw backend, and compares what the clients saw (see
// clientResult.normalized for what is not compared). A case whose answers may
// differ says why in differs, and its check pins both answers; any other
// difference is a bug of one of the two.
func TestDifferentialBackends(t *testing.T) {
	t.Parallel()
	for _, tc := range diffCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// diffCase is one backend behaviour under comparison.
type diffCase struct {
	name string
	// answer is what the backend writes for each request it reads on a
	// connection; script replaces it for conversations that need more.
	answer []rawStep
	script func(c *bconn)
	seed   string // script's answer, for FuzzResponse's corpus
	// requests are sent in turn, each on a new client connection; the
	// default is one GET. before, if set, runs before each request but
	// the first (a bounded wait for something the backend reports).
	requests []clientRequest
	before   func(t *testing.T, b *rawBackend)
	// differs, when set, says why the two answers may differ; check must
	// then pin each proxy's answer. looseConn, when set, says why the
	// client connection's state after the answers is not compared.
	differs   string
	looseConn string
	// racy, when set, says why the reference's answers depend on timing
	// the test cannot control: they are then neither compared nor
	// checked, and check pins fronttier's alone.
	racy string
	// check, if set, holds for the answers of the proxy named by side
	// ("fronttier" or "reference"), with the backend it used.
	check func(t *testing.T, side string, rs []clientResult, b *rawBackend)
}

const (
	sideFronttier = "fronttier"
	sideReference = "reference"
)

func (tc diffCase) run(t *testing.T) {
	script := tc.script
	if script == nil {
		script = scriptedAnswer(tc.answer)
	}
	reqs := tc.requests
	if len(reqs) == 0 {
		reqs = []clientRequest{getReq("/")}
	}
	type proxySide struct {
		name string
		b    *rawBackend
		addr string
		rs   []clientResult
	}
	sides := [2]*proxySide{{name: sideFronttier}, {name: sideReference}}
	sides[0].b = newRawBackend(t, script)
	sides[0].addr = startFronttier(t, sides[0].b.addr, panicLog{t})
	sides[1].b = newRawBackend(t, script)
	sides[1].addr = startReference(t, sides[1].b.addr)

	var wg sync.WaitGroup
	for _, s := range sides {
		wg.Go(func() {
			for i, req := range reqs {
				if i > 0 && tc.before != nil {
					tc.before(t, s.b)
				}
				s.rs = append(s.rs, rawRoundTrip(s.addr, req))
			}
		})
	}
	wg.Wait()

	f, r := sides[0].rs, sides[1].rs
	for i := range reqs {
		if tc.racy != "" {
			break
		}
		withConn := tc.looseConn == ""
		fn, rn := f[i].normalized(withConn), r[i].normalized(withConn)
		switch {
		case tc.differs == "" && fn != rn:
			t.Errorf("answer %d differs\n--- fronttier:\n%s--- reference:\n%s", i+1, fn, rn)
		case tc.differs != "" && fn == rn:
			t.Errorf("answer %d: the listed difference (%s) did not show; both answered\n%s", i+1, tc.differs, fn)
		}
	}
	if tc.check != nil {
		for _, s := range sides {
			if tc.racy != "" && s.name == sideReference {
				continue
			}
			tc.check(t, s.name, s.rs, s.b)
		}
	}
	if t.Failed() {
		for i := range reqs {
			t.Logf("answer %d, fronttier (raw):\n%s", i+1, f[i].raw())
			t.Logf("answer %d, reference (raw):\n%s", i+1, r[i].raw())
		}
	}
}

// Assertions for checks: each names the side and the answer.

func diffWantStatus(t *testing.T, side string, i int, r clientResult, code int) {
	t.Helper()
	if r.resp == nil {
		t.Errorf("%s, answer %d: %s, want %d", side, i+1, r.err, code)
		return
	}
	if r.resp.StatusCode != code {
		t.Errorf("%s, answer %d: status %d, want %d", side, i+1, r.resp.StatusCode, code)
	}
}

func diffWantBody(t *testing.T, side string, i int, r clientResult, body, end string) {
	t.Helper()
	if r.resp == nil {
		t.Errorf("%s, answer %d: %s, want body %q", side, i+1, r.err, body)
		return
	}
	if string(r.body) != body || r.end != end {
		t.Errorf("%s, answer %d: body %s (%s), want %q (%s)", side, i+1, abridged(string(r.body), 100), r.end, body, end)
	}
}

// diffWantCut checks that the client could tell the answer is broken: the
// connection closed before a complete head, or mid-body (then after no
// more than the backend sent of it).
func diffWantCut(t *testing.T, side string, i int, r clientResult, sent string) {
	t.Helper()
	switch {
	case r.resp == nil && r.err == errClosedEarly:
	case r.resp == nil:
		t.Errorf("%s, answer %d: %s, want a broken answer", side, i+1, r.err)
	case r.end != "cut":
		t.Errorf("%s, answer %d: a %s answer with body %s, want it cut", side, i+1, r.end, abridged(string(r.body), 100))
	case !strings.HasPrefix(sent, string(r.body)):
		t.Errorf("%s, answer %d: body %s, want a prefix of %q", side, i+1, abridged(string(r.body), 100), sent)
	}
}

// diffWantGaveUp requires the proxy to have closed the backend's
// connection during its pause (its own timeout, named by what, fired
// first), rather than waiting for the backend to hang up.
func diffWantGaveUp(t *testing.T, side string, b *rawBackend, what string) {
	t.Helper()
	if b.gaveUp() == 0 {
		t.Errorf("%s: the proxy waited out the backend's silence instead of giving up on it (%s)", side, what)
	}
}

// plain200 is a complete answer with a length.
func plain200(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// earlyHintsAnswer is an interim 103 Early Hints.
const earlyHintsAnswer = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"

// fillerFields returns n header lines of about size bytes each.
func fillerFields(n, size int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-Filler-%05d: %s\r\n", i, strings.Repeat("f", size-18))
	}
	return b.String()
}

func diffCases() []diffCase {
	longCookie := "Set-Cookie: session=" + strings.Repeat("c", 5000-len("Set-Cookie: session=")) + "\r\n"
	return []diffCase{
		{
			name:   "200 with length, then close",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-End: one\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 5\r\n\r\nhello"), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 200)
				diffWantBody(t, side, 0, rs[0], "hello", "complete")
			},
		},
		{
			name:   "length, exact body, connection left open",
			answer: []rawStep{rawSend(plain200("exactly this"))},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "exactly this", "complete")
			},
		},
		{
			name: "keep-alive: two requests, one connection",
			script: func(c *bconn) {
				for {
					_, n, err := c.readRequest()
					if err != nil || !c.counted(n) {
						return
					}
				}
			},
			seed:     plain200("answer 1"),
			requests: []clientRequest{getReq("/1"), getReq("/2")},
			check: func(t *testing.T, side string, rs []clientResult, b *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "answer 1", "complete")
				diffWantBody(t, side, 1, rs[1], "answer 2", "complete")
				if on := b.arrivals(); len(on) != 2 || on[0] != on[1] {
					t.Errorf("%s: requests arrived on backend connections %v, want one reused", side, on)
				}
			},
		},
		{
			name: "chunked with announced trailers, in pieces",
			answer: []rawStep{
				rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum, X-Other\r\nTransfer-Encoding: chunked\r\n\r\n"),
				rawWait(50 * time.Millisecond), rawSend("5\r\nhello\r\n"),
				rawWait(50 * time.Millisecond), rawSend("6\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: def\r\n\r\n"),
			},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "hello world", "complete")
				if r := rs[0]; r.resp != nil && (r.resp.Trailer.Get("X-Checksum") != "abc" || r.resp.Trailer.Get("X-Other") != "def") {
					t.Errorf("%s: trailer %v, want X-Checksum and X-Other", side, r.resp.Trailer)
				}
			},
		},
		{
			name: "chunked with an unannounced trailer",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhello\r\n0\r\nX-Surprise: yes\r\n\r\n")},
			differs: "fronttier forwards only announced trailer fields (RFC 9110 6.5.1 lets a recipient discard others); ReverseProxy forwards all",
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "hello", "complete")
				if r := rs[0]; r.resp != nil && (r.resp.Trailer.Get("X-Surprise") != "") != (side == sideReference) {
					t.Errorf("%s: trailer %v", side, r.resp.Trailer)
				}
			},
		},
		{
			name:   "103 Early Hints before the answer",
			answer: []rawStep{rawSend(earlyHintsAnswer), rawWait(50 * time.Millisecond), rawSend(plain200("ok"))},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				r := rs[0]
				if len(r.interim) != 1 || r.interim[0].StatusCode != 103 || r.interim[0].Header.Get("Link") == "" {
					t.Errorf("%s: interim answers %d, want one 103 with its Link", side, len(r.interim))
				}
				diffWantBody(t, side, 0, r, "ok", "complete")
			},
		},
		{
			name: "102 Processing twice before the answer",
			answer: []rawStep{rawSend("HTTP/1.1 102 Processing\r\n\r\n"), rawWait(50 * time.Millisecond),
				rawSend("HTTP/1.1 102 Processing\r\n\r\n"), rawWait(50 * time.Millisecond), rawSend(plain200("done"))},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				if n := len(rs[0].interim); n != 2 {
					t.Errorf("%s: %d interim answers, want 2", side, n)
				}
				diffWantBody(t, side, 0, rs[0], "done", "complete")
			},
		},
		{
			name:   "six interim answers: one more than fronttier takes",
			answer: []rawStep{rawSend(strings.Repeat(earlyHintsAnswer, 6) + plain200("late"))},
			differs: "fronttier forwards at most 5 interim answers, then answers 502 (the cap Go's Transport had); " +
				"since Go 1.2x the Transport forwards any number to a ClientTrace, bounding only each head's size",
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				if side == sideFronttier {
					if n := len(rs[0].interim); n != 5 {
						t.Errorf("%s: %d interim answers forwarded, want 5", side, n)
					}
					diffWantStatus(t, side, 0, rs[0], 502)
				} else {
					diffWantBody(t, side, 0, rs[0], "late", "complete")
				}
			},
		},
		{
			name:   "204 with a length and no body",
			answer: []rawStep{rawSend("HTTP/1.1 204 No Content\r\nX-End: e\r\nContent-Length: 5\r\n\r\n")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 204)
				diffWantBody(t, side, 0, rs[0], "", "complete")
			},
		},
		{
			name: "204 with body bytes after it, then a second request",
			script: func(c *bconn) {
				for {
					_, n, err := c.readRequest()
					if err != nil {
						return
					}
					if n == 1 {
						if !c.run([]rawStep{rawSend("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")}) {
							return
						}
					} else if !c.counted(n) {
						return
					}
				}
			},
			seed:     "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
			requests: []clientRequest{getReq("/1"), getReq("/2")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 204)
				diffWantBody(t, side, 1, rs[1], "answer 2", "complete")
			},
		},
		{
			name:   "304 with a length and no body",
			answer: []rawStep{rawSend("HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\nContent-Length: 5\r\n\r\n")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 304)
			},
		},
		{
			name:     "HEAD with a length",
			answer:   []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1234\r\n\r\n")},
			requests: []clientRequest{{head: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"}},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 200)
				if r := rs[0]; r.resp != nil && r.resp.Header.Get("Content-Length") != "1234" {
					t.Errorf("%s: Content-Length %q, want the backend's 1234", side, r.resp.Header.Get("Content-Length"))
				}
			},
		},
		{
			name:     "HEAD, chunked",
			answer:   []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")},
			requests: []clientRequest{{head: "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n"}},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 200)
			},
		},
		{
			name: "HTTP/1.0 body delimited by close",
			answer: []rawStep{rawSend("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, "),
				rawWait(50 * time.Millisecond), rawSend("part two"), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "part one, part two", "complete")
			},
		},
		{
			name:   "HTTP/1.1 body delimited by close",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end"), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "until the end", "complete")
			},
		},
		{
			name:   "closes mid-body, length promised",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly twenty bytes..."), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantCut(t, side, 0, rs[0], "only twenty bytes...")
			},
		},
		{
			name:   "closes mid-body, chunked without its last chunk",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantCut(t, side, 0, rs[0], "hello")
			},
		},
		{
			name: "an unsolicited answer 300 ms after a complete one",
			script: func(c *bconn) {
				for {
					_, n, err := c.readRequest()
					if err != nil || !c.counted(n) {
						return
					}
					if n == 1 {
						if !c.pause(300*time.Millisecond) || !c.run([]rawStep{rawSend(plain200("unsolicited"))}) {
							return
						}
						c.report("unsolicited sent")
					}
				}
			},
			seed:     plain200("answer 1") + plain200("unsolicited"),
			requests: []clientRequest{getReq("/1"), getReq("/2")},
			before: func(t *testing.T, b *rawBackend) {
				if !b.await("unsolicited sent", 3*time.Second) {
					t.Error("the backend never sent its unsolicited answer")
				}
				// A proxy may close it at once (net/http does), or find out
				// at reuse: the second request must come soon, while the
				// connection is still fresh.
				b.await("conn 0 closed", 200*time.Millisecond)
			},
			check: func(t *testing.T, side string, rs []clientResult, b *rawBackend) {
				diffWantBody(t, side, 0, rs[0], "answer 1", "complete")
				diffWantBody(t, side, 1, rs[1], "answer 2", "complete")
			},
		},
		{
			name: "408 on an idle connection, then close",
			script: func(c *bconn) {
				for {
					_, n, err := c.readRequest()
					if err != nil || !c.counted(n) {
						return
					}
					if n == 1 {
						c.run([]rawStep{rawWait(300 * time.Millisecond),
							rawSend("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), rawHangUp()})
						c.report("408 sent")
						return
					}
				}
			},
			seed:     plain200("answer 1") + "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
			requests: []clientRequest{getReq("/1"), getReq("/2")},
			racy: "Go's Transport finds the 408 in its connection's read loop, asynchronously: a request sent " +
				"right after it may still be given the dead connection and get the 408; fronttier peeks at every reuse",
			before: func(t *testing.T, b *rawBackend) {
				if !b.await("408 sent", 3*time.Second) {
					t.Error("the backend never sent its 408")
				}
			},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantBody(t, side, 1, rs[1], "answer 2", "complete")
			},
		},
		{
			name:   "a 5,000-byte Set-Cookie line",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + longCookie + "Content-Length: 2\r\n\r\nok")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 200)
				if r := rs[0]; r.resp != nil && len(r.resp.Header.Get("Set-Cookie")) != len(longCookie)-len("Set-Cookie: \r\n") {
					t.Errorf("%s: Set-Cookie of %d bytes, want it whole", side, len(r.resp.Header.Get("Set-Cookie")))
				}
			},
		},
		{
			name:   "a 200 KiB header line, under the head limit",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Big: " + strings.Repeat("b", 200<<10) + "\r\nContent-Length: 2\r\n\r\nok")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 200)
			},
		},
		{
			name:   "900 KiB of fields, under the head limit",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + fillerFields(900, 1024) + "Content-Length: 2\r\n\r\nok")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 200)
			},
		},
		{
			name:   "1.5 MiB of fields, over the head limit",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + fillerFields(1536, 1024) + "Content-Length: 2\r\n\r\nok")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 502)
			},
		},
		{
			name:    "Content-Length and Transfer-Encoding both",
			answer:  []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")},
			differs: "fronttier refuses a response framed two ways (502, as nginx; RFC 9112 6.3 allows it); Go reads it chunked and forwards it",
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				if side == sideFronttier {
					diffWantStatus(t, side, 0, rs[0], 502)
				} else {
					diffWantBody(t, side, 0, rs[0], "hello", "complete")
				}
			},
		},
		{
			name:   "two Transfer-Encoding: chunked lines",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 502)
			},
		},
		{
			// Found by FuzzResponse (testdata/fuzz/FuzzResponse/aa231cef484df62d).
			name:   "HTTP/1.0 answer with Transfer-Encoding: chunked",
			answer: []rawStep{rawSend("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), rawHangUp()},
			differs: "RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; fronttier refuses it (502, " +
				"as it does a length with a chunked coding); Go ignores the field in HTTP/1.0 and reads the body to the close",
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				if side == sideFronttier {
					diffWantStatus(t, side, 0, rs[0], 502)
				} else {
					diffWantBody(t, side, 0, rs[0], "5\r\nhello\r\n0\r\n\r\n", "complete")
				}
			},
		},
		{
			name:   "Transfer-Encoding: gzip, chunked",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 502)
			},
		},
		{
			name:   "bad status line",
			answer: []rawStep{rawSend("HTTP/1.1 2x0 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 502)
			},
		},
		{
			name:   "not HTTP at all",
			answer: []rawStep{rawSend("SSH-2.0-OpenSSH_9.6\r\n"), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				diffWantStatus(t, side, 0, rs[0], 502)
			},
		},
		{
			name:    "stalls before the head past the response-header timeout",
			answer:  []rawStep{rawWait(3 * time.Second), rawSend(plain200("too late"))},
			differs: "a response-header timeout: fronttier answers 504 (as nginx), ReverseProxy 502",
			check: func(t *testing.T, side string, rs []clientResult, b *rawBackend) {
				if side == sideFronttier {
					diffWantStatus(t, side, 0, rs[0], 504)
				} else {
					diffWantStatus(t, side, 0, rs[0], 502)
				}
				diffWantGaveUp(t, side, b, "the response-header timeout")
			},
		},
		{
			// The reference has no read timeout: it cuts the answer when
			// the backend gives up (3 s). Both answers are cut alike;
			// fronttier must cut it after its own read timeout.
			name:   "stalls mid-body past the read timeout",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello"), rawWait(3 * time.Second), rawHangUp()},
			check: func(t *testing.T, side string, rs []clientResult, b *rawBackend) {
				diffWantCut(t, side, 0, rs[0], "hello")
				if side == sideFronttier {
					diffWantGaveUp(t, side, b, "the read timeout")
				}
			},
		},
		earlyAnswer(1<<20, false),
		earlyAnswer(16<<20, true),
		{
			name: "Connection-listed hop-by-hop fields",
			answer: []rawStep{rawSend("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: X-Hop, keep-alive\r\nX-Hop: secret\r\n" +
				"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-End: kept\r\nContent-Length: 2\r\n\r\nok")},
			check: func(t *testing.T, side string, rs []clientResult, _ *rawBackend) {
				r := rs[0]
				if r.resp == nil {
					t.Errorf("%s: %s", side, r.err)
					return
				}
				for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Connection"} {
					if v := r.resp.Header.Get(k); v != "" {
						t.Errorf("%s: hop-by-hop %s: %s forwarded", side, k, v)
					}
				}
				if r.resp.Header.Get("X-End") != "kept" {
					t.Errorf("%s: end-to-end X-End lost", side)
				}
			},
		},
	}
}

// earlyAnswer is a backend answering 401 to an upload of size bytes
// before reading it, then a second request. With fresh, fronttier must
// send that request on a new backend connection: the upload is too large
// for the socket buffers, so it was still being written when the answer
// came. (A smaller one may have been sent whole before the answer was
// read: reusing the connection is then correct, the backend must read the
// rest of the body or close.)
func earlyAnswer(size int, fresh bool) diffCase {
	const answer = "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nWww-Authenticate: Basic realm=\"x\"\r\nContent-Length: 12\r\n\r\nunauthorized"
	return diffCase{
		name: fmt.Sprintf("early 401 to a %d MiB upload it does not read", size>>20),
		script: func(c *bconn) {
			for {
				req, n, err := c.readRequest()
				if err != nil {
					return
				}
				if n > 1 {
					if !c.counted(n) {
						return
					}
					continue
				}
				// Answer at once, read the upload only 800 ms later
				// (within the header timeout of a request queued behind
				// it on this connection).
				if !c.run([]rawStep{rawSend(answer), rawWait(800 * time.Millisecond)}) {
					return
				}
				c.mark("upload read")
				c.c.SetReadDeadline(time.Now().Add(diffAnswerWait))
				if _, err := io.CopyN(io.Discard, c.br, req.ContentLength); err != nil {
					return
				}
			}
		},
		seed: answer,
		requests: []clientRequest{
			{head: fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", size), upload: size},
			getReq("/after"),
		},
		looseConn: "a server may close a connection whose request body it has not read (fronttier does not drain " +
			"an upload it stopped forwarding; net/http reads on, up to 256 KiB)",
		check: func(t *testing.T, side string, rs []clientResult, b *rawBackend) {
			diffWantStatus(t, side, 0, rs[0], 401)
			diffWantBody(t, side, 0, rs[0], "unauthorized", "complete")
			// The answer must not wait for the upload: it arrives before the
			// backend starts reading it (800 ms after answering).
			if at, ok := b.marked("upload read"); ok && !rs[0].done.Before(at) {
				t.Errorf("%s: the early answer arrived only after the backend began reading the upload", side)
			}
			diffWantBody(t, side, 1, rs[1], "answer 2", "complete")
			if on := b.arrivals(); fresh && side == sideFronttier && len(on) == 2 && on[0] == on[1] {
				t.Errorf("%s: the backend connection that answered before reading the upload was reused", side)
			}
		},
	}
}

// diffSeeds returns the first answer of every case, for FuzzResponse.
func diffSeeds() [][]byte {
	var seeds [][]byte
	for _, tc := range diffCases() {
		if tc.seed != "" {
			seeds = append(seeds, []byte(tc.seed))
		} else if s := seedOf(tc.answer); len(s) > 0 && len(s) < 64<<10 {
			seeds = append(seeds, s)
		}
	}
	return seeds
}
