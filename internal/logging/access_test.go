package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// accessKeys is the exact key set of an access log line, in order.
var accessKeys = []string{"time", "client", "method", "host", "path", "status", "bytes", "duration_ms", "backend", "error"}

// decodeLine unmarshals one access log line and checks it has exactly the
// documented keys, in order.
func decodeLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(line, &rec); err != nil {
		t.Fatalf("line %q is not valid JSON: %v", line, err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(keys, accessKeys) {
		t.Fatalf("keys = %v, want %v", keys, accessKeys)
	}
	return rec
}

func TestAccessLogLine(t *testing.T) {
	var buf bytes.Buffer
	a, err := NewAccessLog("", Options{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 2*3600))
	a.Log(Entry{
		Time: when, Client: "192.0.2.7", Method: "GET", Host: "example.com",
		Path: "/a?b=c", Status: 404, Bytes: 1234, Duration: 1234567 * time.Nanosecond,
		Backend: "backend-a",
	})
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want exactly one newline-terminated line, got %q", out)
	}
	want := `{"time":"2024-05-06T05:08:09.123456789Z","client":"192.0.2.7","method":"GET",` +
		`"host":"example.com","path":"/a?b=c","status":404,"bytes":1234,"duration_ms":1.234,"backend":"backend-a","error":""}` + "\n"
	if out != want {
		t.Errorf("line =\n%s\nwant\n%s", out, want)
	}
	rec := decodeLine(t, buf.Bytes())
	if rec["duration_ms"] != 1.234 || rec["status"] != 404.0 || rec["bytes"] != 1234.0 {
		t.Errorf("decoded = %v", rec)
	}
}

func TestAccessLogEmptyBackendAndZeroTime(t *testing.T) {
	var buf bytes.Buffer
	a, err := NewAccessLog("", Options{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	a.Log(Entry{Status: 502})
	rec := decodeLine(t, buf.Bytes())
	if rec["backend"] != "" {
		t.Errorf("backend = %v, want empty string", rec["backend"])
	}
	ts, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if ts.Before(before.Add(-time.Second)) || !strings.HasSuffix(rec["time"].(string), "Z") {
		t.Errorf("zero Time logged as %v, want now in UTC", rec["time"])
	}
}

func TestAccessLogHostileStrings(t *testing.T) {
	hostile := []string{
		``,
		`"`,
		`\`,
		`\"`,
		"\x00\x01\x07\x1f\x7f",
		"line\nbreak\r\ttab",
		"</script><!--&",
		"\u2028\u2029",
		"héllo wörld ✓ 😀",
		"\xff\xfe invalid \xc3\x28 utf8 \xe2\x82",
		"trailing half rune \xf0\x9f\x98",
		`{"time":"injected"}`,
		strings.Repeat("x\"", 1000),
	}
	var buf bytes.Buffer
	a, err := NewAccessLog("", Options{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range hostile {
		buf.Reset()
		a.Log(Entry{Client: s, Method: s, Host: s, Path: s, Backend: s, Status: 200})
		line := buf.Bytes()
		if bytes.Count(line, []byte("\n")) != 1 {
			t.Errorf("%q: line contains a raw newline: %q", s, line)
		}
		if !utf8.Valid(line) {
			t.Errorf("%q: line is not valid UTF-8: %q", s, line)
		}
		rec := decodeLine(t, line)
		// Valid strings must survive unchanged; each invalid byte becomes
		// its own U+FFFD, as encoding/json does.
		ref := jsonRoundTrip(t, s)
		if utf8.ValidString(s) && ref != s {
			t.Fatalf("reference mismatch for %q", s)
		}
		for _, k := range []string{"client", "method", "host", "path", "backend"} {
			if rec[k] != ref {
				t.Errorf("%q: %s decoded as %q, want %q", s, k, rec[k], ref)
			}
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	// Every single byte, and a few multi-byte sequences, must decode to
	// what encoding/json would round-trip.
	var inputs []string
	for c := range 256 {
		inputs = append(inputs, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	inputs = append(inputs, "\u00e9", "\u2028x\u2029", "\U0001F600", "\xed\xa0\x80") // last: UTF-16 surrogate, invalid
	for _, s := range inputs {
		got := appendJSONString(nil, s)
		var dec string
		if err := json.Unmarshal(got, &dec); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, got, err)
		}
		if want := jsonRoundTrip(t, s); dec != want {
			t.Errorf("%q: encoded %s decodes to %q, want %q", s, got, dec, want)
		}
	}
}

// jsonRoundTrip is what encoding/json makes of s after encoding and decoding.
func jsonRoundTrip(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAccessLogFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "access.log")
	var stdout bytes.Buffer
	a, err := NewAccessLog(path, Options{MaxSizeMB: 1, Level: "ignored"}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("NewAccessLog did not create the file: %v", err)
	}
	a.Log(Entry{Method: "POST", Path: "/x", Status: 201})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Log(Entry{Method: "GET", Path: "/late"})
	if got := a.WriteErrors(); got != 1 {
		t.Errorf("WriteErrors after logging to a closed log = %d, want 1", got)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("file access log wrote to stdout: %q", stdout.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("file has %d lines, want 1: %q", len(lines), data)
	}
	if rec := decodeLine(t, []byte(lines[0])); rec["path"] != "/x" || rec["status"] != 201.0 {
		t.Errorf("record = %v", rec)
	}
}

func TestAccessLogBadPath(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewAccessLog(dir, Options{}, nil); err == nil {
		t.Error("NewAccessLog on a directory succeeded")
	}
	if _, err := NewAccessLog("", Options{}, nil); err == nil {
		t.Error("NewAccessLog with no path and no writer succeeded")
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestAccessLogCountsWriteErrors(t *testing.T) {
	a, err := NewAccessLog("", Options{}, failWriter{})
	if err != nil {
		t.Fatal(err)
	}
	a.Log(Entry{})
	a.Log(Entry{})
	if got := a.WriteErrors(); got != 2 {
		t.Errorf("WriteErrors = %d, want 2", got)
	}
}

// countingWriter records how many Write calls it received.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++ // the AccessLog's mutex serializes calls; -race checks it
	return c.Buffer.Write(p)
}

func TestAccessLogConcurrent(t *testing.T) {
	const goroutines, perG = 16, 200
	var w countingWriter
	a, err := NewAccessLog("", Options{}, &w)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				a.Log(Entry{
					Client: fmt.Sprintf("g%d", g), Path: fmt.Sprintf("/%d/%s", i, strings.Repeat("p", i)),
					Status: 200, Bytes: int64(i),
				})
			}
		})
	}
	wg.Wait()
	if w.writes != goroutines*perG {
		t.Errorf("writes = %d, want one per line (%d)", w.writes, goroutines*perG)
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(&w.Buffer)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		rec := decodeLine(t, sc.Bytes())
		seen[rec["client"].(string)]++
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != goroutines*perG {
		t.Fatalf("got %d lines, want %d", n, goroutines*perG)
	}
	for g := range goroutines {
		if c := seen[fmt.Sprintf("g%d", g)]; c != perG {
			t.Errorf("client g%d: %d lines, want %d", g, c, perG)
		}
	}
}

func TestAccessLogSteadyStateAllocs(t *testing.T) {
	a, err := NewAccessLog("", Options{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e := benchEntry()
	a.Log(e) // warm the pool
	// AllocsPerRun rounds the average down, so the odd allocation after a
	// GC empties the pool does not count.
	if allocs := testing.AllocsPerRun(1000, func() { a.Log(e) }); allocs != 0 {
		t.Errorf("Log allocates %.2f times per call, want 0", allocs)
	}
}

func benchEntry() Entry {
	return Entry{
		Time: time.Now(), Client: "203.0.113.9", Method: "GET", Host: "api.example.com",
		Path: "/v1/items?id=42&q=\"x\"", Status: 200, Bytes: 5120,
		Duration: 3*time.Millisecond + 417*time.Microsecond, Backend: "backend-a",
	}
}

func BenchmarkAccessLog(b *testing.B) {
	a, err := NewAccessLog("", Options{}, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	e := benchEntry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			a.Log(e)
		}
	})
}
