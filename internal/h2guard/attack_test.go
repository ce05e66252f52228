package h2guard

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fronttier/internal/clock/clocktest"

	"golang.org/x/net/http2"
)

// attackServer is a test server whose guard budgets never refill (its
// clock stands still), so that what an attack gets through is a count,
// and whose handler counts the requests it starts.
type attackServer struct {
	*testServer
	started atomic.Int64
	calmed  chan string // the attacks OnCalm reports
}

// startAttackServer starts an attackServer with the budgets of l (its
// Clock and OnCalm are the attackServer's).
func startAttackServer(t *testing.T, l Limits) *attackServer {
	t.Helper()
	as := &attackServer{calmed: make(chan string, 8)}
	l.Clock = clocktest.New(time.Unix(0, 0))
	l.OnCalm = func(attack string) {
		select {
		case as.calmed <- attack:
		default:
		}
	}
	as.testServer = startServerLimits(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.started.Add(1)
		echo(w, r)
	}), l)
	return as
}

// attack is one attack on an attackServer: setup writes its first frames,
// then step, called with 0, 1, ... up to steps-1 or until it fails, writes
// the frames of one round.
type attack struct {
	name  string
	steps int
	setup func(cl *client) error
	step  func(cl *client, i int) error
	// want is the attack the guard must report; maxStarted the most
	// requests the handler may start; maxAnswers the most frames of each
	// type the server may send before its GOAWAY (the attack's frames it
	// processed, for those it answers: PING, SETTINGS, RST_STREAM).
	want       string
	maxStarted int64
	maxAnswers map[http2.FrameType]int
	// maxLastStream, if set, bounds the GOAWAY's last stream: the
	// highest the server processed.
	maxLastStream uint32
}

// run makes the attack on a connection of its own while a reader drains
// what the server sends, and a well-behaved client on another connection
// makes a request. It checks that the server closed the attacker's
// connection with GOAWAY ENHANCE_YOUR_CALM for the attack, that the
// handler started at most a.maxStarted of the attacker's requests, and
// that the other client was served.
func (as *attackServer) run(t *testing.T, a attack) {
	t.Helper()
	cl := dial(t, as.testServer)
	cl.fr.AllowIllegalWrites = true
	ended := make(chan result, 1)
	go func() { ended <- cl.drain() }()
	sent := make(chan int, 1)
	go func() {
		n := 0
		if a.setup == nil || a.setup(cl) == nil {
			for ; n < a.steps && a.step(cl, n) == nil; n++ {
			}
		}
		sent <- n
	}()

	good := dial(t, as.testServer)
	good.get(1)
	want(t, good.read(1), "status 200")

	r := <-ended
	n := <-sent
	t.Logf("%d of %d rounds written; the handler started %d requests", n, a.steps, as.started.Load()-1)
	want(t, r, "GOAWAY ENHANCE_YOUR_CALM")
	select {
	case got := <-as.calmed:
		if got != a.want {
			t.Errorf("the guard reported %s, want %s", got, a.want)
		}
	default:
		t.Errorf("the guard reported no attack, want %s", a.want)
	}
	if got := as.started.Load() - 1; got > a.maxStarted {
		t.Errorf("the handler started %d of the attacker's requests, want at most %d", got, a.maxStarted)
	}
	if a.maxLastStream != 0 && r.goAway.LastStreamID > a.maxLastStream {
		t.Errorf("GOAWAY's last stream is %d, want at most %d", r.goAway.LastStreamID, a.maxLastStream)
	}
	for typ, most := range a.maxAnswers {
		if r.answers[typ] > most {
			t.Errorf("the server sent %d %v frames before its GOAWAY, want at most %d", r.answers[typ], typ, most)
		}
	}
}

// drain reads frames until a GOAWAY arrives or reading fails, and
// returns the GOAWAY, or that the connection closed, with the count of
// each type of frame before (but RST_STREAM(NO_ERROR)); it writes nothing, so that it can run beside
// a writer.
func (cl *client) drain() result {
	answers := map[http2.FrameType]int{}
	for {
		f, err := cl.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				continue // a frame the framer refused for one stream
			}
			return result{eof: errors.Is(err, io.EOF) || isReset(err), answers: answers}
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			gc := *g
			gc.FrameHeader = http2.FrameHeader{}
			return result{goAway: &gc, answers: answers}
		}
		if rs, ok := f.(*http2.RSTStreamFrame); ok && rs.ErrCode == http2.ErrCodeNo {
			// The server ends a stream whose handler is done before the
			// request: not an answer to the attack's frames.
			continue
		}
		answers[f.Header().Type]++
	}
}

// request writes a GET on stream id, ending the stream when end.
func (cl *client) request(id uint32, end bool) error {
	return cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cl.encode(),
		EndStream: end, EndHeaders: true})
}

// attackRounds is how many rounds of frames a flood sends: far more than
// any budget.
const attackRounds = 10_000

func TestRapidReset(t *testing.T) {
	t.Parallel()
	as := startAttackServer(t, Limits{})
	// Each round opens a stream with a request and cancels it at once.
	as.run(t, attack{name: "rapid reset", steps: attackRounds, want: AttackRapidReset,
		maxStarted: int64(defaultResets.Burst) + 1, maxLastStream: 2*uint32(defaultResets.Burst) + 1,
		step: func(cl *client, i int) error {
			id := uint32(2*i + 1)
			if err := cl.request(id, true); err != nil {
				return err
			}
			return cl.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}})
}

func TestMadeYouReset(t *testing.T) {
	t.Parallel()
	// Each round opens a stream with a request, then sends a frame that
	// makes the server reset it: the client sends no RST_STREAM.
	tests := []struct {
		name  string
		end   bool     // the request ends the stream
		extra []string // the request's extra fields
		bad   func(cl *client, id uint32) error
	}{
		{name: "data past its content-length", extra: []string{"content-length", "2"}, bad: func(cl *client, id uint32) error {
			return cl.fr.WriteData(id, false, []byte("xyz"))
		}},
		{name: "window update of 0", bad: func(cl *client, id uint32) error {
			return cl.fr.WriteWindowUpdate(id, 0)
		}},
		{name: "data on a half-closed stream", end: true, bad: func(cl *client, id uint32) error {
			return cl.fr.WriteData(id, false, []byte("x"))
		}},
		{name: "stream depending on itself", bad: func(cl *client, id uint32) error {
			return cl.fr.WritePriority(id, http2.PriorityParam{StreamDep: id, Weight: 1})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const burst = 50
			as := startAttackServer(t, Limits{Resets: Rate{Burst: burst}})
			as.run(t, attack{steps: attackRounds, want: AttackMadeYouReset, maxStarted: burst + 1,
				maxLastStream: 2*burst + 1, maxAnswers: map[http2.FrameType]int{http2.FrameRSTStream: burst},
				step: func(cl *client, i int) error {
					id := uint32(2*i + 1)
					err := cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cl.encode(tt.extra...),
						EndStream: tt.end, EndHeaders: true})
					if err != nil {
						return err
					}
					return tt.bad(cl, id)
				}})
		})
	}
}

func TestControlFloods(t *testing.T) {
	t.Parallel()
	tests := []attack{
		{name: "ping", want: AttackPingFlood,
			maxAnswers: map[http2.FrameType]int{http2.FramePing: defaultPings.Burst}, step: func(cl *client, i int) error {
				return cl.fr.WritePing(false, [8]byte{byte(i)})
			}},
		// The server's own SETTINGS and the acknowledgements, which
		// coalesce.
		{name: "settings", want: AttackSettingsFlood,
			maxAnswers: map[http2.FrameType]int{http2.FrameSettings: defaultSettings.Burst + 1}, step: func(cl *client, _ int) error {
				return cl.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 16})
			}},
		{name: "window update", want: AttackWindowUpdateFlood, step: func(cl *client, _ int) error {
			return cl.fr.WriteWindowUpdate(0, 1)
		}},
		{name: "window update on a stream", want: AttackWindowUpdateFlood,
			setup: func(cl *client) error { return cl.request(1, false) },
			step:  func(cl *client, _ int) error { return cl.fr.WriteWindowUpdate(1, 1) },
			// The request the setup opened.
			maxStarted: 1},
		{name: "continuation", want: AttackContinuationFlood,
			setup: func(cl *client) error {
				return cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: cl.encode()})
			},
			step: func(cl *client, _ int) error { return cl.fr.WriteContinuation(1, false, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.steps = attackRounds
			startAttackServer(t, Limits{}).run(t, tt)
		})
	}
}

func TestHPACKBomb(t *testing.T) {
	t.Parallel()
	as := startAttackServer(t, Limits{})
	var bomb []byte
	as.run(t, attack{name: "hpack bomb", want: AttackHPACKBomb, steps: 1,
		// A request puts a field of 4 KiB in the dynamic table; it is
		// answered, and the handler starts once.
		setup: func(cl *client) error {
			first := cl.encode("x-bomb", strings.Repeat("b", 4000))
			// Then a block references that field 1,000 times: 1 KiB on
			// the wire, 4 MiB decoded.
			bomb = append(cl.encode(), bytes.Repeat([]byte{0x80 | 62}, 1000)...)
			return cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first,
				EndStream: true, EndHeaders: true})
		},
		step: func(cl *client, _ int) error {
			return cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: bomb,
				EndStream: true, EndHeaders: true})
		},
		maxStarted: 1})
}

// TestBudgetsLeaveClientsAlone: at the default budgets, with the clock
// standing still, a client that does at once what real clients do now and
// then is served: a browser leaving a page cancels 250 streams in flight,
// a client pings and changes its settings a few times, opens small
// windows and sends a header block in CONTINUATION frames.
func TestBudgetsLeaveClientsAlone(t *testing.T) {
	t.Parallel()
	as := startAttackServer(t, Limits{})
	cl := dial(t, as.testServer)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 250 {
		id := uint32(2*i + 1)
		check(cl.request(id, true))
		check(cl.fr.WriteRSTStream(id, http2.ErrCodeCancel))
	}
	for i := range 50 {
		check(cl.fr.WritePing(false, [8]byte{byte(i)}))
	}
	for range 20 {
		check(cl.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20}))
	}
	for range 500 {
		check(cl.fr.WriteWindowUpdate(0, 100))
	}
	cl.writeSplit(501, cl.encode("x-n", "1"), 3, http2.HeadersFrameParam{})
	want(t, cl.read(501), "status 200")
	select {
	case a := <-as.calmed:
		t.Errorf("the guard reported %s", a)
	default:
	}
}
