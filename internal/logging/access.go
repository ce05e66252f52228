package logging

import (
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Entry is one proxied request, as recorded in the access log.
type Entry struct {
	Time     time.Time // when the request arrived; zero means now
	Client   string    // client IP
	Method   string
	Host     string
	Path     string
	Status   int
	Bytes    int64         // response body bytes written to the client
	Duration time.Duration // time taken to serve the request
	Backend  string        // backend id, "" if none was picked
	// Error says why the request failed or its answer was cut short
	// ("upstream_read_timeout", "client_closed", ...); "" when it was
	// answered whole.
	Error string
}

// AccessLog writes one JSON object per line for every proxied request, to a
// rotating file or to a plain writer such as standard output. It is safe for
// concurrent use.
//
// Each line has exactly the keys time (RFC 3339 with nanoseconds, UTC),
// client, method, host, path, status, bytes, duration_ms (milliseconds with
// microsecond precision), backend and error (why the answer failed or was
// cut short, "" when it was whole), in that order.
type AccessLog struct {
	mu     sync.Mutex // serializes writes so lines never interleave
	w      io.Writer
	file   *rotatingFile // nil when writing to a plain writer
	closed bool

	bufs      sync.Pool // of *[]byte
	writeErrs atomic.Uint64
}

// maxPooledBuf is the largest line buffer kept for reuse; a request with
// enormous strings does not pin a huge buffer forever.
const maxPooledBuf = 64 << 10

// NewAccessLog returns an access log writing to the file at path, rotated as
// rot's rotation fields say (its other fields are ignored). If path is empty
// it writes to stdout instead, which must then not be nil.
func NewAccessLog(path string, rot Options, stdout io.Writer) (*AccessLog, error) {
	a := &AccessLog{}
	a.bufs.New = func() any {
		b := make([]byte, 0, 512)
		return &b
	}
	if path == "" {
		if stdout == nil {
			return nil, errors.New("logging: access log without a path needs a writer")
		}
		a.w = stdout
		return a, nil
	}
	f, err := openRotating(path, rot)
	if err != nil {
		return nil, err
	}
	a.w, a.file = f, f
	return a, nil
}

// Log writes e as one line with a single Write. It is meant for the request
// hot path: the line is formatted outside the lock into a reused buffer, so
// in steady state it does not allocate. If the write fails or the log is
// closed, the line is dropped and counted in WriteErrors.
func (a *AccessLog) Log(e Entry) {
	bp := a.bufs.Get().(*[]byte)
	line := appendEntry((*bp)[:0], &e)

	a.mu.Lock()
	ok := !a.closed
	if ok {
		_, err := a.w.Write(line)
		ok = err == nil
	}
	a.mu.Unlock()
	if !ok {
		a.writeErrs.Add(1)
	}

	if cap(line) <= maxPooledBuf {
		*bp = line
		a.bufs.Put(bp)
	}
}

// WriteErrors reports how many lines have been dropped because writing them
// failed or the log was closed, for exposing as a metric.
func (a *AccessLog) WriteErrors() uint64 {
	return a.writeErrs.Load()
}

// Close closes the access log's file, if any. Lines logged afterwards are
// dropped. It is safe to call more than once.
func (a *AccessLog) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if a.file != nil {
		return a.file.Close()
	}
	return nil
}

// appendEntry appends e as a JSON object and a newline to b.
func appendEntry(b []byte, e *Entry) []byte {
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	b = append(b, `{"time":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","client":`...)
	b = appendJSONString(b, e.Client)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration.Microseconds())/1e3, 'f', 3, 64)
	b = append(b, `,"backend":`...)
	b = appendJSONString(b, e.Backend)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, e.Error)
	return append(b, "}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s to b as a quoted JSON string. It escapes '"',
// '\\' and control characters, replaces invalid UTF-8 with U+FFFD, and
// escapes U+2028 and U+2029 (as encoding/json does) so that lines are also
// safe to embed in JavaScript.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0 // s[start:i] is pending, needing no escape
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
