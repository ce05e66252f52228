package e2e

import (
	"bytes"
	"errors"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestMetricsAndLogs checks the Prometheus metrics (on the management API
// and the dedicated listener) after traffic including 502 and 503 answers,
// and the "Switched backend tag" log event.
func TestMetricsAndLogs(t *testing.T) {
	t.Parallel()
	m1, m2 := startBackend(t, "m1"), startBackend(t, "m2")
	p := newProxy(t, conf{
		Metrics: true,
		Domains: []domainConf{
			{"m.example.com", "m"},
			{"m503.example.com", "nobody-has-this"},
			{"m502.example.com", "dead"},
		},
		Backends: []backendConf{
			be("m1", m1, "m"), be("m2", m2, "m", "n"),
			{ID: "dead1", Addr: freeAddr(t), Tags: []string{"dead"}},
		},
	})
	if p.Metrics == "" {
		t.Fatal("no metrics listener was logged although [metrics] enabled = true")
	}
	for range 4 {
		p.getEcho(t, "m.example.com", "/")
	}
	for host, want := range map[string]int{"m503.example.com": 503, "m502.example.com": 502, "nobody.example.net": 404} {
		if resp, _ := p.get(t, host, "/"); resp.StatusCode != want {
			t.Fatalf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}

	for _, src := range []struct{ name, url string }{
		{"API", "http://" + p.API + "/api/v1/metrics"},
		{"metrics listener", "http://" + p.Metrics + "/metrics"},
	} {
		t.Run(src.name, func(t *testing.T) {
			resp, err := p.client.Get(src.url)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", src.url, resp.StatusCode)
			}
			text := buf.String()
			samples := parseMetrics(t, text)

			want := []struct {
				labels map[string]string
				min    float64
			}{
				{map[string]string{"domain": "m.example.com", "backend": "m1", "code": "200", "error": "false"}, 2},
				{map[string]string{"domain": "m.example.com", "backend": "m2", "code": "200", "error": "false"}, 2},
				{map[string]string{"domain": "m502.example.com", "backend": "dead1", "code": "502", "error": "true"}, 1},
				{map[string]string{"domain": "m503.example.com", "code": "503", "error": "true"}, 1},
			}
			for _, w := range want {
				found := false
				for _, s := range samples {
					if s.name == "proxy_requests_total" && hasLabels(s.labels, w.labels) {
						found = true
						if s.value < w.min {
							t.Errorf("proxy_requests_total%v = %v, want >= %v", w.labels, s.value, w.min)
						}
					}
				}
				if !found {
					t.Errorf("no proxy_requests_total sample with labels %v in:\n%s", w.labels, grepLines(text, "proxy_requests_total"))
				}
			}
			for _, s := range samples {
				if s.name != "proxy_requests_total" {
					continue
				}
				for _, k := range []string{"domain", "backend", "code", "error"} {
					if _, ok := s.labels[k]; !ok {
						t.Errorf("proxy_requests_total sample %v lacks label %q", s.labels, k)
					}
				}
				code, _ := strconv.Atoi(s.labels["code"])
				if wantErr := strconv.FormatBool(code >= 500); s.labels["error"] != wantErr {
					t.Errorf("proxy_requests_total%v: error=%q, want %q", s.labels, s.labels["error"], wantErr)
				}
			}
			if !slices.ContainsFunc(samples, func(s sample) bool {
				return s.name == "proxy_request_duration_ms_bucket" && s.labels["le"] != ""
			}) {
				t.Errorf("no proxy_request_duration_ms_bucket sample")
			}
			if !slices.ContainsFunc(samples, func(s sample) bool { return s.name == "proxy_active_connections" }) {
				t.Errorf("no proxy_active_connections sample")
			}
			promtoolCheck(t, text)
		})
	}

	// The switch is logged with the manual's message and its fields.
	p.switchTag(t, "m.example.com", "n")
	line := p.waitLog(t, msgIs("Switched backend tag"), `"Switched backend tag"`)
	m, _ := jsonLine(line)
	if m["domain"] != "m.example.com" || m["old_tag"] != "m" || m["new_tag"] != "n" {
		t.Errorf("switch log line %s: want domain m.example.com, old_tag m, new_tag n", line)
	}
}

// TestAccessLog turns on the access log (console): one JSON line per
// request with exactly the documented keys.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "acc1")
	p := newProxy(t, conf{
		AccessLog: true,
		Domains: []domainConf{
			{"acc.example.com", "acc"},
			{"acc503.example.com", "nobody-has-this"},
			{"acc502.example.com", "dead"},
		},
		Backends: []backendConf{
			be("acc1", b, "acc"),
			{ID: "dead1", Addr: freeAddr(t), Tags: []string{"dead"}},
		},
	})
	type req struct {
		host, path string
		status     int
		backend    string
		err        string // the error field: why it failed
	}
	reqs := []req{
		{"acc.example.com", "/access-1", 200, "acc1", ""},
		{"acc.example.com", "/access-2", 200, "acc1", ""},
		{"ACC.example.com:81", "/access-3", 200, "acc1", ""},
		{"nobody.example.net", "/access-4", 404, "", ""},
		{"acc503.example.com", "/access-5", 503, "", "no_backend"},
		{"acc502.example.com", "/access-6", 502, "dead1", "upstream_connect"},
	}
	sizes := map[string]int{}
	for _, r := range reqs {
		resp, body := p.get(t, r.host, r.path)
		if resp.StatusCode != r.status {
			t.Fatalf("%s%s: %d, want %d", r.host, r.path, resp.StatusCode, r.status)
		}
		sizes[r.path] = len(body)
	}
	wantKeys := []string{"backend", "bytes", "client", "duration_ms", "error", "host", "method", "path", "status", "time"}
	for _, r := range reqs {
		isThis := func(line string) bool {
			m, ok := jsonLine(line)
			return ok && m["path"] == r.path && m["msg"] == nil
		}
		line := p.waitLog(t, isThis, "an access log line for "+r.path)
		n := 0
		for _, l := range p.out.Lines() {
			if isThis(l) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d access log lines for %s, want 1", n, r.path)
		}
		m, _ := jsonLine(line)
		if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, wantKeys) {
			t.Errorf("access log line %s has keys %v, want %v", line, keys, wantKeys)
		}
		if m["client"] != "127.0.0.1" || m["method"] != "GET" || m["host"] != r.host ||
			m["status"] != float64(r.status) || m["backend"] != r.backend || m["error"] != r.err {
			t.Errorf("access log line %s: want client 127.0.0.1, GET, host %s, status %d, backend %q, error %q",
				line, r.host, r.status, r.backend, r.err)
		}
		if m["bytes"] != float64(sizes[r.path]) {
			t.Errorf("access log line for %s (status %d) has bytes %v, but the client received a %d-byte body",
				r.path, r.status, m["bytes"], sizes[r.path])
		}
		if d, ok := m["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("access log line %s: duration_ms %v", line, m["duration_ms"])
		}
		if s, _ := m["time"].(string); s == "" {
			t.Errorf("access log line %s: no time", line)
		}
	}
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics parses the Prometheus text exposition format (enough of it
// for these tests: names, quoted label values with escapes, a value).
func parseMetrics(t *testing.T, text string) []sample {
	t.Helper()
	var out []sample
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i < 0 {
			t.Fatalf("bad metrics line %q", line)
		} else {
			s.name, rest = rest[:i], rest[i:]
		}
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					t.Fatalf("bad labels in %q", line)
				}
				key := strings.TrimPrefix(rest[:eq], ",")
				rest = rest[eq+2:]
				var val strings.Builder
				for {
					if rest == "" {
						t.Fatalf("unterminated label value in %q", line)
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' && rest != "" {
						switch rest[0] {
						case 'n':
							c = '\n'
						default:
							c = rest[0]
						}
						rest = rest[1:]
					}
					val.WriteByte(c)
				}
				s.labels[key] = val.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			t.Fatalf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// hasLabels reports whether got has every label of want (and, for a want
// without "backend", any backend).
func hasLabels(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func grepLines(text, substr string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// promtoolCheck runs promtool check metrics on text when promtool is
// installed. Lint findings about the manual's own metric names are
// tolerated (the manual requires proxy_request_duration_ms); anything else
// fails the test.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not on PATH; skipping promtool check metrics")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("promtool: %v", err)
	}
	const lintExit = 3 // promtool: the text parsed, lint found problems
	var other []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		// The names the manual fixes (and the upstream histogram that
		// shares their unit): see README "Metrics".
		manual := strings.HasPrefix(line, "proxy_request_duration_ms ") || strings.HasPrefix(line, "proxy_upstream_duration_ms ")
		if line == "" || manual && strings.Contains(line, "abbreviated units") {
			continue
		}
		other = append(other, line)
	}
	if ee.ExitCode() != lintExit || len(other) > 0 {
		t.Errorf("promtool check metrics: exit %d:\n%s", ee.ExitCode(), strings.Join(other, "\n"))
		return
	}
	t.Logf("promtool check metrics: only the manual-mandated name is linted: %s", strings.TrimSpace(string(out)))
}

// TestGCGoal: with GOGC unset the proxy runs the collector at 400% while
// its live heap is small (internal/gcgoal, started by main); GOGC set in
// the environment wins, and gcgoal stays off.
func TestGCGoal(t *testing.T) {
	t.Parallel()
	b := startBackend(t, "g1")
	path := writeConfig(t, conf{Domains: []domainConf{{"g.example.com", "g"}}, Backends: []backendConf{be("g1", b, "g")}})
	for _, tt := range []struct {
		env  string
		want float64
	}{{"GOGC=", 400}, {"GOGC=150", 150}} {
		p := startProxyEnv(t, path, []string{tt.env})
		if got := metricValue(t, p, "go_gc_gogc_percent", nil); got != tt.want {
			t.Errorf("%s: go_gc_gogc_percent = %v, want %v", tt.env, got, tt.want)
		}
		p.kill()
	}
}
