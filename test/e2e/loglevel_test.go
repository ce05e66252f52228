package e2e

import (
	"strings"
	"testing"
)

// TestDebugAndTraceLevels: level = "debug" shows what the manual promises
// ("detailed debug information": routing decisions, pool and health
// changes) and level = "trace" one line per request.
func TestDebugAndTraceLevels(t *testing.T) {
	t.Parallel()
	a1 := startBackend(t, "a1")
	c := conf{
		Domains:  []domainConf{{"dbg.example.com", "a"}},
		Backends: []backendConf{be("a1", a1, "a")},
	}
	path := writeConfig(t, c)
	writeFile(t, path, strings.Replace(string(readFile(t, path)), `level = "info"`, `level = "trace"`, 1))
	p := startProxy(t, path)
	for _, msg := range []string{"route table published", "backend pool", "health check passed"} {
		p.waitLog(t, msgIs(msg), "a debug line "+msg)
	}
	if id := p.backendOf(t, "dbg.example.com"); id != "a1" {
		t.Fatalf("routed to %q", id)
	}
	line := p.waitLog(t, func(l string) bool {
		m, ok := jsonLine(l)
		return ok && m["msg"] == "request" && m["level"] == "TRACE" && m["domain"] == "dbg.example.com" && m["backend"] == "a1"
	}, "a trace line for the request")
	if !strings.Contains(line, `"status":200`) {
		t.Errorf("trace line %s lacks the status", line)
	}
}
