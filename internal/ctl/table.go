package ctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pct(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) + "%" }

func canaryCell(c *canary) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s", c.Tag, pct(c.Percent))
}

func tlsCell(d domain) string {
	if !d.TLSEnabled {
		return "off"
	}
	s := "on"
	if d.CertificateSource != nil {
		s += " (" + d.CertificateSource.Type + ")"
	}
	if d.HTTPToHTTPS {
		s += ", redirect"
	}
	return s
}

// domainTable: DOMAIN TAG CANARY TLS.
func domainTable(w io.Writer, ds []domain) {
	tw := newTab(w)
	fmt.Fprintln(tw, "DOMAIN\tTAG\tCANARY\tTLS")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Domain, d.Tag, canaryCell(d.Canary), tlsCell(d))
	}
	tw.Flush()
}

func domainDetail(w io.Writer, d domain) {
	tw := newTab(w)
	fmt.Fprintf(tw, "domain:\t%s\n", d.Domain)
	fmt.Fprintf(tw, "tag:\t%s\n", d.Tag)
	fmt.Fprintf(tw, "canary:\t%s\n", canaryCell(d.Canary))
	fmt.Fprintf(tw, "tls:\t%s\n", tlsCell(d))
	fmt.Fprintf(tw, "http_to_https:\t%t\n", d.HTTPToHTTPS)
	fmt.Fprintf(tw, "lb_policy:\t%s\n", orDash(d.LBPolicy))
	if d.CertificateSource != nil && d.CertificateSource.CertPath != "" {
		fmt.Fprintf(tw, "certificate:\t%s, %s\n", d.CertificateSource.CertPath, d.CertificateSource.KeyPath)
	}
	if d.Sticky != nil {
		fmt.Fprintf(tw, "sticky:\tby %s, backend %t\n", orDash(d.Sticky.By), d.Sticky.Backend)
	}
	for _, o := range d.Overrides {
		kind, name := "header", o.Header
		if o.Cookie != "" {
			kind, name = "cookie", o.Cookie
		} else if o.Query != "" {
			kind, name = "query", o.Query
		}
		fmt.Fprintf(tw, "override:\t%s %s=%s -> %s\n", kind, name, o.Value, o.Tag)
	}
	tw.Flush()
}

func tagsCell(tags []string) string {
	if len(tags) == 0 {
		return "-"
	}
	return strings.Join(tags, ",")
}

func healthCell(b backendJSON) string {
	h := b.Health
	if h == "" {
		h = "unknown"
	}
	if h == "unhealthy" && b.ConsecutiveFailures > 0 {
		h += fmt.Sprintf(" (%d failures)", b.ConsecutiveFailures)
	}
	return h
}

// backendTable: ID ADDRESS TAGS HEALTH LAST ERROR.
func backendTable(w io.Writer, bs []backendJSON) {
	tw := newTab(w)
	fmt.Fprintln(tw, "ID\tADDRESS\tTAGS\tHEALTH\tLAST ERROR")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, b.Address, tagsCell(b.Tags), healthCell(b), orDash(b.LastError))
	}
	tw.Flush()
}

func backendDetail(w io.Writer, b backendJSON) {
	tw := newTab(w)
	fmt.Fprintf(tw, "id:\t%s\n", b.ID)
	fmt.Fprintf(tw, "address:\t%s\n", b.Address)
	fmt.Fprintf(tw, "tags:\t%s\n", tagsCell(b.Tags))
	if b.Weight != 0 {
		fmt.Fprintf(tw, "weight:\t%d\n", b.Weight)
	}
	fmt.Fprintf(tw, "health:\t%s\n", healthCell(b))
	if b.LastCheckAt != nil {
		fmt.Fprintf(tw, "last check:\t%s\n", b.LastCheckAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "last error:\t%s\n", orDash(b.LastError))
	fmt.Fprintf(tw, "active requests:\t%d\n", b.ActiveRequests)
	tw.Flush()
}

// certTable: DOMAIN SOURCE KEYS STATUS DAYS LEFT EXPIRES (KEYS: the key
// types of its chains, "ecdsa,rsa" for a domain serving both).
func certTable(w io.Writer, cs []certificate) {
	tw := newTab(w)
	fmt.Fprintln(tw, "DOMAIN\tSOURCE\tKEYS\tSTATUS\tDAYS LEFT\tEXPIRES")
	for _, c := range cs {
		keys := make([]string, 0, len(c.Chains))
		for _, ch := range c.Chains {
			keys = append(keys, ch.KeyType)
		}
		days, exp := "-", "-"
		if c.DaysLeft != nil {
			days = strconv.Itoa(*c.DaysLeft)
		}
		if c.ExpiresAt != nil {
			exp = c.ExpiresAt.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Domain, c.Source, orDash(strings.Join(keys, ",")), orDash(c.Status), days, exp)
	}
	tw.Flush()
}

// ago is d as "3s ago", "5m ago", "2h ago" or "4d ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// clusterTable: the store and revision, the node driving the rollouts,
// then NODE API REVISION LAST SEEN.
func clusterTable(w io.Writer, ci clusterInfo, now time.Time) {
	fmt.Fprintf(w, "store: %s, revision %d\n", ci.Store, ci.Revision)
	leader := ci.RolloutLeader
	if leader == "" {
		leader = "none elected: no rollout gate runs"
	}
	fmt.Fprintf(w, "rollout leader: %s\n", leader)
	tw := newTab(w)
	fmt.Fprintln(tw, "NODE\tAPI\tREVISION\tLAST SEEN\tVERSION")
	for _, n := range ci.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.Name, orDash(n.APIAddr), n.Revision, ago(now, n.LastSeen), orDash(n.Version))
	}
	tw.Flush()
}

func figuresCell(f figures) string {
	return fmt.Sprintf("%d requests, %d errors (%.2f%%), p99 %.4gms", f.Requests, f.Errors, f.ErrorRate*100, f.P99Ms)
}

func rolloutDetail(w io.Writer, ro rollout) {
	tw := newTab(w)
	fmt.Fprintf(tw, "domain:\t%s\n", ro.Domain)
	fmt.Fprintf(tw, "rollout:\t%s -> %s\n", ro.FromTag, ro.ToTag)
	fmt.Fprintf(tw, "state:\t%s\n", ro.State)
	steps := make([]string, len(ro.Steps))
	for i, s := range ro.Steps {
		steps[i] = pct(s)
		if i == ro.Step {
			steps[i] = "[" + steps[i] + "]"
		}
	}
	fmt.Fprintf(tw, "step:\t%d/%d  %s\n", ro.Step+1, len(ro.Steps), strings.Join(steps, " "))
	fmt.Fprintf(tw, "canary share:\t%s\n", pct(ro.Percent))
	if ro.NextStepAt != nil {
		fmt.Fprintf(tw, "next gate:\t%s\n", ro.NextStepAt.UTC().Format(time.RFC3339))
	}
	limits := fmt.Sprintf("error rate <= %g", ro.MaxErrorRate)
	if ro.MaxP99Ms > 0 {
		limits += fmt.Sprintf(", p99 <= %gms", ro.MaxP99Ms)
	}
	if ro.MinRequests > 0 {
		limits += fmt.Sprintf(", at least %d requests", ro.MinRequests)
	}
	fmt.Fprintf(tw, "gate:\t%s, every %ds\n", limits, ro.StepSecs)
	fmt.Fprintf(tw, "canary (%s):\t%s\n", ro.ToTag, figuresCell(ro.Canary))
	fmt.Fprintf(tw, "baseline (%s):\t%s\n", ro.FromTag, figuresCell(ro.Baseline))
	if ro.Reason != "" {
		fmt.Fprintf(tw, "reason:\t%s\n", ro.Reason)
	}
	tw.Flush()
}
