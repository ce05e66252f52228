// Package contrib_test checks the files under contrib/: the Prometheus rules
// with promtool, the Grafana dashboard's and the rules' metric names against
// those the proxy's sources register, and the systemd unit with
// systemd-analyze.
package contrib_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const root = "../.."

// registered matches a metric's name where the sources define it: the
// Name field of prometheus.*Opts, or a custom collector's NewDesc.
var registered = regexp.MustCompile(`(?:Name:\s*|prometheus\.NewDesc\(\s*)"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// exportedMetrics returns the names the proxy exports, read from its sources.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	// Every Go source of the proxy (not its tests): a metric added
	// anywhere is found without keeping a list of files.
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range registered.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"proxy_requests_total", "certificate_days_until_expiration", "proxy_canary_percent", "fleet_store_up"} {
		if !names[must] {
			t.Fatalf("the extraction missed %s: found %v", must, names)
		}
	}
	return names
}

var (
	quoted    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers  = regexp.MustCompile(`\{[^}]*\}`)
	ranges    = regexp.MustCompile(`\[[^\]]*\]`)
	grouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ident     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	keywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
	labelVals = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)
)

// metricNames returns the metric names a PromQL expression selects: what is
// left once strings, label matchers, ranges, grouping clauses, function
// names and operators are taken out.
func metricNames(expr string) []string {
	s := quoted.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	var names []string
	for _, m := range ident.FindAllStringSubmatch(s, -1) {
		if m[1] != "" || keywords[strings.ToLower(m[0])] {
			continue // a function or an aggregation, or a keyword
		}
		names = append(names, m[0])
	}
	return names
}

// checkNames fails for every name used in expr that the proxy does not export.
func checkNames(t *testing.T, where, expr string, exported map[string]bool) int {
	t.Helper()
	names := metricNames(expr)
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && exported[b] {
				base = b
			}
		}
		if !exported[base] {
			t.Errorf("%s: %q uses %s, which the proxy does not export", where, expr, n)
		}
	}
	return len(names)
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (domain) (rate(proxy_requests_total{error="true",domain=~"$domain"}[5m])) / sum(rate(proxy_requests_total[5m])) > 0.05`,
			[]string{"proxy_requests_total", "proxy_requests_total"}},
		{`histogram_quantile(0.99, sum by (le, domain, tag) (rate(proxy_request_duration_ms_bucket[$__rate_interval])))`,
			[]string{"proxy_request_duration_ms_bucket"}},
		{`backend_healthy == 0 and on (instance) fleet_store_up`, []string{"backend_healthy", "fleet_store_up"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// TestDashboard checks the Grafana dashboard is valid JSON, importable
// (the Prometheus data source as an input), and queries only metrics the
// proxy exports.
func TestDashboard(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	raw, err := os.ReadFile(filepath.Join(root, "contrib/grafana/fronttier.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Inputs []struct {
			Name     string
			PluginID string `json:"pluginId"`
		} `json:"__inputs"`
		UID, Title string
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
		Panels []struct {
			Title, Type string
			Datasource  struct{ UID string }
			Targets     []struct {
				Expr       string
				Datasource struct{ UID string }
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("inputs %+v, want one Prometheus data source DS_PROMETHEUS", dash.Inputs)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Errorf("uid %q, title %q: both needed", dash.UID, dash.Title)
	}
	used := 0
	for _, v := range dash.Templating.List {
		m := labelVals.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		used += checkNames(t, "variable "+v.Name, m[1], exported)
	}
	queried := make(map[string]bool)
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		if p.Datasource.UID != "${DS_PROMETHEUS}" {
			t.Errorf("panel %q: data source %q, want ${DS_PROMETHEUS}", p.Title, p.Datasource.UID)
		}
		for _, q := range p.Targets {
			if q.Datasource.UID != "${DS_PROMETHEUS}" {
				t.Errorf("panel %q: query data source %q, want ${DS_PROMETHEUS}", p.Title, q.Datasource.UID)
			}
			used += checkNames(t, "panel "+p.Title, q.Expr, exported)
			for _, n := range metricNames(q.Expr) {
				queried[strings.TrimSuffix(n, "_bucket")] = true
			}
		}
	}
	// What the issue asks the dashboard to show.
	for _, m := range []string{"proxy_requests_total", "proxy_request_duration_ms", "proxy_active_connections",
		"backend_healthy", "certificate_days_until_expiration", "proxy_canary_percent", "fleet_store_up", "fleet_revision_applied"} {
		if !queried[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	if used == 0 {
		t.Fatal("found no metric names in the dashboard")
	}
}

// TestRuleNames checks every alert rule's expression uses only metrics the
// proxy exports, and that the manual's certificate rule is there as written.
func TestRuleNames(t *testing.T) {
	t.Parallel()
	exported := exportedMetrics(t)
	raw, err := os.ReadFile(filepath.Join(root, "contrib/prometheus/fronttier-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := parseRules(string(raw))
	if len(rules) == 0 {
		t.Fatal("found no alert rules")
	}
	alerts := make(map[string]string)
	for _, r := range rules {
		if checkNames(t, "alert "+r.alert, r.expr, exported) == 0 {
			t.Errorf("alert %s: no metric in %q", r.alert, r.expr)
		}
		alerts[r.alert] = r.expr + " for " + r.forDur + " " + r.severity
	}
	if got, want := alerts["CertificateExpiringSoon"], "certificate_days_until_expiration < 30 for 1h warning"; got != want {
		t.Errorf("the manual's certificate rule: %q, want %q", got, want)
	}
	for _, a := range []string{"BackendDown", "ErrorRateHigh", "FleetStoreUnreachable"} {
		if alerts[a] == "" {
			t.Errorf("no alert %s", a)
		}
	}
}

type rule struct{ alert, expr, forDur, severity string }

// parseRules reads the alert rules of a rules file: enough YAML for the
// file's own layout (promtool checks the rest), as go.mod has no YAML parser.
func parseRules(src string) []rule {
	var rules []rule
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		key, val, _ := strings.Cut(strings.TrimSpace(lines[i]), ":")
		val = strings.TrimSpace(val)
		switch key {
		case "- alert":
			rules = append(rules, rule{alert: val})
		case "expr", "for", "severity":
			if len(rules) == 0 {
				continue
			}
			r := &rules[len(rules)-1]
			if val == "|" { // a block: the lines indented more than the key
				indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
				var block []string
				for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" ||
					len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
					i++
					block = append(block, strings.TrimSpace(lines[i]))
				}
				val = strings.TrimSpace(strings.Join(block, " "))
			}
			switch key {
			case "expr":
				r.expr = val
			case "for":
				r.forDur = val
			case "severity":
				r.severity = val
			}
		}
	}
	return rules
}

// need returns the path of a command, or skips the test when it is missing
// (fails when CI is set, where it must be installed).
func need(t *testing.T, cmd string) string {
	t.Helper()
	path, err := exec.LookPath(cmd)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found and CI is set: %v", cmd, err)
		}
		t.Skipf("%s not found: %v", cmd, err)
	}
	return path
}

// TestPromtool runs promtool's syntax check on the rules and their unit
// tests (fronttier-rules_test.yml: each alert fires on the series that
// should fire it, and not on the others).
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := need(t, "promtool")
	dir := filepath.Join(root, "contrib/prometheus")
	for _, args := range [][]string{
		{"check", "rules", "fronttier-rules.yml"},
		{"test", "rules", "fronttier-rules_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestSystemdUnit checks the unit has the hardening the README promises and
// that systemd-analyze verify accepts it.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(root, "contrib/systemd/fronttier.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	lines := strings.Split(unit, "\n")
	for _, want := range []string{
		"User=fronttier",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"NoNewPrivileges=yes",
		"ProtectSystem=strict",
		"ReadWritePaths=/etc/fronttier /var/lib/fronttier",
		"ProtectHome=yes",
		"PrivateTmp=yes",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"LimitNOFILE=65535",
		"Restart=always",
		"ExecStart=/usr/local/bin/fronttier --config /etc/fronttier/config.toml",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("unit lacks the line %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze not found: %v", err)
	}
	// verify insists that ExecStart's binary exists: point it at one that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fronttier.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/fronttier", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "fronttier.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
