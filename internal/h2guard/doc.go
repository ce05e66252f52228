// Package h2guard screens what an HTTP/2 client sends before Go's HTTP/2
// server reads it, to fix two places where that server departs from RFC
// 9113, and to hold each connection to budgets against the attacks on
// HTTP/2 servers (see Defences below). The RFC fixes:
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
// decoding error) it stops screening header blocks for the rest of the
// connection and the server's own checks apply; the budgets stay. After a
// frame the server refuses with a connection error (a frame over its
// maximum size, an interrupted header block) it passes the rest through.
//
// # Defences
//
// Each attack below is stopped by golang.org/x/net/http2's own limits
// (v0.61.0, server.go and frame.go), by the guard's, or both. When a
// guard budget runs out, the guard ends what the server reads with
// ConnectionError(ENHANCE_YOUR_CALM) in place of the frame that spent it;
// the server answers that as it answers a connection error it finds
// itself: GOAWAY ENHANCE_YOUR_CALM (last stream: the highest it
// processed), then it closes the connection. Configure logs
// "h2guard: closing connection from ADDR with ENHANCE_YOUR_CALM: ATTACK"
// to the server's ErrorLog. Budgets are per connection, a burst then a
// rate (Limits; defaults in parentheses); each attack has a test in
// attack_test.go that fails without its defence.
//
//	Attack              CVE             x/net alone                       h2guard (default)                    Client sees
//	rapid reset         CVE-2023-44487  runs at most MaxConcurrentStreams Resets: RST_STREAM frames (500, then  GOAWAY ENHANCE_YOUR_CALM
//	                                    (250) handlers and queues 4x;     50/s)
//	                                    more: GOAWAY ENHANCE_YOUR_CALM.
//	                                    Total handlers started unbounded
//	                                    (5,326 of 10,000 HEADERS+RST)
//	MadeYouReset        CVE-2025-8671   as rapid reset: concurrency is    Resets, shared with RST_STREAM:      GOAWAY ENHANCE_YOUR_CALM
//	                                    bounded by running handlers, not  WINDOW_UPDATE of 0 on a stream,
//	                                    open streams; total unbounded     DATA or HEADERS on a stream the
//	                                    (7,790 of 10,000)                 client ended or reset, DATA past
//	                                                                      the declared content-length,
//	                                                                      PRIORITY on itself
//	CONTINUATION flood  CVE-2023-45288  GOAWAY PROTOCOL_ERROR once the    MaxContinuations per block (64)      GOAWAY ENHANCE_YOUR_CALM
//	                                    block is over MaxHeaderListSize;
//	                                    empty CONTINUATIONs: never
//	ping flood          CVE-2019-9512   closes (no GOAWAY) when 10,000    Pings (100, then 10/s)               GOAWAY ENHANCE_YOUR_CALM
//	                                    control frames are queued (a
//	                                    client not reading); a reading
//	                                    client: every PING answered
//	SETTINGS flood      CVE-2019-9515   acknowledgements coalesce, so     Settings (100, then 2/s)             GOAWAY ENHANCE_YOUR_CALM
//	                                    nothing queues; each SETTINGS is
//	                                    applied (a window change walks
//	                                    every stream), unbounded; over
//	                                    100 entries: GOAWAY PROTOCOL_ERROR
//	WINDOW_UPDATE flood CVE-2019-9511   0 on the connection: GOAWAY       WindowUpdates: increments under      GOAWAY ENHANCE_YOUR_CALM
//	                                    PROTOCOL_ERROR; overflow:         1 KiB (1000, then 100/s)
//	                                    FLOW_CONTROL_ERROR; small ones
//	                                    unbounded (DATA dribbles out)
//	HPACK bomb          CVE-2016-6581   stops keeping fields past         a block decoding to more than        GOAWAY ENHANCE_YOUR_CALM (431
//	                                    MaxHeaderListSize (MaxHeaderBytes MaxHeaderListSize and to more than   from x/net for an honest
//	                                    + 320) and answers 431; table     16 times its wire size; the guard's  block over the limit)
//	                                    and strings bounded by SETTINGS   decoder stops its work at the limit
//
// The guard sees only what the client sends, so it predicts the server's
// resets from the client's frames; a reset it cannot predict (DATA over a
// flow-control window, a malformed request, a request it did not decode)
// spends no budget, and x/net's concurrency bound still holds for it. Nor
// does it see the server's answers, so a reset after a complete response
// spends the budget as an early one does. It remembers the state of the
// client's 1024 most recent streams.
package h2guard
