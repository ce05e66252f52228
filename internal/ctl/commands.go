package ctl

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// commands is every leaf command, in the order help lists them.
var commands = []command{
	{path: "domains ls", summary: "List the domains: tag, canary and TLS.", example: "fronttier ctl domains ls", max: 0,
		flags: noFlags(func(r *invocation, _ []string) error {
			var ds []domain
			return r.show(http.MethodGet, "/domains", nil, &ds, func(w io.Writer) { domainTable(w, ds) })
		})},
	{path: "domains get", args: "DOMAIN", summary: "Show one domain.", example: "fronttier ctl domains get example.com", min: 1, max: 1,
		flags: noFlags(func(r *invocation, a []string) error {
			var d domain
			return r.show(http.MethodGet, "/domains/"+seg(a[0]), nil, &d, func(w io.Writer) { domainDetail(w, d) })
		})},
	{path: "domains add", args: "DOMAIN TAG [flags]", summary: "Add a domain that sends its traffic to the backends tagged TAG.",
		example: "fronttier ctl domains add shop.example.com blue --tls --http-to-https --lets-encrypt", min: 2, max: 2,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			tls := fs.Bool("tls", false, "serve HTTPS")
			redirect := fs.Bool("http-to-https", false, "redirect HTTP to HTTPS")
			policy := fs.String("lb-policy", "", "round_robin, least_conn or weighted (default round_robin)")
			cert := fs.String("cert", "", "certificate file (PEM); with --key")
			key := fs.String("key", "", "private key file (PEM); with --cert")
			le := fs.Bool("lets-encrypt", false, "get the certificate from Let's Encrypt")
			force := fs.Bool("force", false, "add it even when no healthy backend carries TAG")
			return func(r *invocation, a []string) error {
				body := map[string]any{"domain": a[0], "enabled_backends_tag": a[1]}
				if *tls {
					body["tls_enabled"] = true
				}
				if *redirect {
					body["http_to_https"] = true
				}
				if *policy != "" {
					body["lb_policy"] = *policy
				}
				switch {
				case *le && (*cert != "" || *key != ""):
					return usagef("--lets-encrypt and --cert/--key exclude each other")
				case *le:
					body["certificate_source"] = certSource{Type: "lets_encrypt"}
				case *cert != "" || *key != "":
					if *cert == "" || *key == "" {
						return usagef("--cert and --key go together")
					}
					body["certificate_source"] = certSource{Type: "file", CertPath: *cert, KeyPath: *key}
				}
				if *force {
					body["force"] = true
				}
				var d domain
				return r.show(http.MethodPost, "/domains", body, &d, func(w io.Writer) { domainTable(w, []domain{d}) })
			}
		}},
	{path: "domains rm", args: "DOMAIN", summary: "Remove a domain.", example: "fronttier ctl domains rm shop.example.com", min: 1, max: 1,
		flags: noFlags(func(r *invocation, a []string) error {
			return r.remove("/domains/"+seg(a[0]), "removed domain "+a[0])
		})},

	{path: "backends ls", summary: "List the backends: address, tags, health and last error.", example: "fronttier ctl backends ls", max: 0,
		flags: noFlags(func(r *invocation, _ []string) error {
			var bs []backendJSON
			return r.show(http.MethodGet, "/backends", nil, &bs, func(w io.Writer) { backendTable(w, bs) })
		})},
	{path: "backends get", args: "ID", summary: "Show one backend.", example: "fronttier ctl backends get web-v1", min: 1, max: 1,
		flags: noFlags(func(r *invocation, a []string) error {
			var b backendJSON
			return r.show(http.MethodGet, "/backends/"+seg(a[0]), nil, &b, func(w io.Writer) { backendDetail(w, b) })
		})},
	{path: "backends add", args: "ID ADDRESS [flags]", summary: "Add a backend at ADDRESS (host:port).",
		example: "fronttier ctl backends add web-v3 10.0.0.13:3000 --tags green", min: 2, max: 2,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			tags := fs.String("tags", "", "its tags, comma-separated")
			weight := fs.Int("weight", 0, "its weight for the weighted policy (0: the default)")
			force := fs.Bool("force", false, "apply it even when it leaves a domain with no backend")
			return func(r *invocation, a []string) error {
				body := map[string]any{"id": a[0], "address": a[1], "tags": splitTags(*tags)}
				if *weight != 0 {
					body["weight"] = *weight
				}
				if *force {
					body["force"] = true
				}
				var b backendJSON
				return r.show(http.MethodPost, "/backends", body, &b, func(w io.Writer) { backendTable(w, []backendJSON{b}) })
			}
		}},
	{path: "backends set", args: "ID [flags]", summary: "Change a backend's address, tags or weight; what is not given stays.",
		example: "fronttier ctl backends set web-v3 --tags green,blue", min: 1, max: 1,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			addr := fs.String("address", "", "its new address, host:port")
			tags := fs.String("tags", "", "its new tags, comma-separated (\"\" for none)")
			weight := fs.Int("weight", 0, "its new weight")
			force := fs.Bool("force", false, "apply it even when it leaves a domain with no backend")
			return func(r *invocation, a []string) error {
				body := map[string]any{}
				fs.Visit(func(f *flag.Flag) {
					switch f.Name {
					case "address":
						body["address"] = *addr
					case "tags":
						body["tags"] = splitTags(*tags)
					case "weight":
						body["weight"] = *weight
					}
				})
				if len(body) == 0 {
					return usagef("nothing to change: give --address, --tags or --weight")
				}
				if *force {
					body["force"] = true
				}
				var b backendJSON
				return r.show(http.MethodPut, "/backends/"+seg(a[0]), body, &b, func(w io.Writer) { backendTable(w, []backendJSON{b}) })
			}
		}},
	{path: "backends rm", args: "ID [--force]", summary: "Remove a backend.", example: "fronttier ctl backends rm web-v1", min: 1, max: 1,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			force := fs.Bool("force", false, "remove it even when it leaves a domain with no backend")
			return func(r *invocation, a []string) error {
				path := "/backends/" + seg(a[0])
				if *force {
					path += "?force=true"
				}
				return r.remove(path, "removed backend "+a[0])
			}
		}},

	{path: "switch", args: "DOMAIN TAG [--force]", summary: "Send all of DOMAIN's traffic to the backends tagged TAG.",
		example: "fronttier ctl switch example.com green", min: 2, max: 2,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			force := fs.Bool("force", false, "switch even when no healthy backend carries TAG")
			return func(r *invocation, a []string) error {
				body := map[string]any{"new_tag": a[1]}
				if *force {
					body["force"] = true
				}
				var d domain
				return r.show(http.MethodPost, "/domains/"+seg(a[0])+"/switch", body, &d, func(w io.Writer) { domainTable(w, []domain{d}) })
			}
		}},
	{path: "canary", args: "DOMAIN TAG PERCENT [--force] | DOMAIN --off", summary: "Send PERCENT of DOMAIN's traffic to TAG; --off ends the canary.",
		example: "fronttier ctl canary example.com green 10", min: 1, max: 3,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			force := fs.Bool("force", false, "send traffic to TAG even when no healthy backend carries it")
			off := fs.Bool("off", false, "remove the canary")
			return func(r *invocation, a []string) error {
				var d domain
				table := func(w io.Writer) { domainTable(w, []domain{d}) }
				if *off {
					if len(a) != 1 {
						return usagef("--off takes only DOMAIN")
					}
					return r.show(http.MethodDelete, "/domains/"+seg(a[0])+"/canary", nil, &d, table)
				}
				if len(a) != 3 {
					return usagef("want DOMAIN TAG PERCENT, or DOMAIN --off")
				}
				pct, err := strconv.ParseFloat(strings.TrimSuffix(a[2], "%"), 64)
				if err != nil {
					return usagef("PERCENT %q is not a number", a[2])
				}
				body := map[string]any{"tag": a[1], "percent": pct}
				if *force {
					body["force"] = true
				}
				return r.show(http.MethodPut, "/domains/"+seg(a[0])+"/canary", body, &d, table)
			}
		}},

	{path: "rollout start", args: "DOMAIN TAG [flags]", summary: "Start a progressive rollout of DOMAIN to TAG: the canary's share rises step by step while the gates pass.",
		example: "fronttier ctl rollout start example.com green --steps 5,25,50,100 --step-secs 120 --max-error-rate 0.01", min: 2, max: 2,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			steps := fs.String("steps", "10,25,50,100", "the canary's shares in percent, rising, the last 100")
			stepSecs := fs.Int("step-secs", 60, "seconds each step lasts before its gate")
			maxErr := fs.Float64("max-error-rate", 0.01, "the most the canary's error rate may be (0..1)")
			maxP99 := fs.Float64("max-p99-ms", 0, "the most the canary's p99 latency may be, ms (0: no limit)")
			minReq := fs.Int("min-requests", 0, "the least canary traffic a gate decides on")
			return func(r *invocation, a []string) error {
				var st []float64
				for s := range strings.SplitSeq(*steps, ",") {
					v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
					if err != nil {
						return usagef("--steps %q: %q is not a number", *steps, s)
					}
					st = append(st, v)
				}
				body := map[string]any{"to_tag": a[1], "steps": st, "step_secs": *stepSecs,
					"max_error_rate": *maxErr, "max_p99_ms": *maxP99, "min_requests": *minReq}
				var ro rollout
				return r.show(http.MethodPost, "/domains/"+seg(a[0])+"/rollout", body, &ro, func(w io.Writer) { rolloutDetail(w, ro) })
			}
		}},
	{path: "rollout status", args: "DOMAIN [-w]", summary: "Show DOMAIN's rollout; -w follows it live until it ends.",
		example: "fronttier ctl rollout status -w example.com", min: 1, max: 1,
		flags: func(fs *flag.FlagSet) func(*invocation, []string) error {
			watch := fs.Bool("w", false, "watch: re-read every second until the rollout ends (or Ctrl-C)")
			return func(r *invocation, a []string) error {
				path := "/domains/" + seg(a[0]) + "/rollout"
				if *watch {
					return r.watch(path)
				}
				var ro rollout
				return r.show(http.MethodGet, path, nil, &ro, func(w io.Writer) { rolloutDetail(w, ro) })
			}
		}},
	rolloutAction("pause", "Pause DOMAIN's rollout at its step."),
	rolloutAction("resume", "Resume DOMAIN's paused rollout."),
	rolloutAction("promote", "Promote DOMAIN's rollout: all traffic to the new tag now."),
	rolloutAction("abort", "Abort DOMAIN's rollout: all traffic back to the old tag."),

	{path: "certs ls", summary: "List the certificates: source, status and days left.", example: "fronttier ctl certs ls", max: 0,
		flags: noFlags(func(r *invocation, _ []string) error {
			var cs []certificate
			return r.show(http.MethodGet, "/certificates", nil, &cs, func(w io.Writer) { certTable(w, cs) })
		})},
	{path: "certs reload", args: "DOMAIN", summary: "Re-read DOMAIN's certificate files.", example: "fronttier ctl certs reload example.com", min: 1, max: 1,
		flags: noFlags(func(r *invocation, a []string) error {
			var m struct {
				Message string `json:"message"`
			}
			return r.show(http.MethodPost, "/certificates/"+seg(a[0])+"/reload", nil, &m, func(w io.Writer) { fmt.Fprintln(w, m.Message) })
		})},
	{path: "certs renew", args: "DOMAIN", summary: "Start renewing DOMAIN's Let's Encrypt certificate (certs ls shows the outcome).",
		example: "fronttier ctl certs renew shop.example.com", min: 1, max: 1,
		flags: noFlags(func(r *invocation, a []string) error {
			var c certificate
			return r.show(http.MethodPost, "/certificates/"+seg(a[0])+"/renew", nil, &c, func(w io.Writer) {
				fmt.Fprintf(w, "renewal of %s under way\n", a[0])
				certTable(w, []certificate{c})
			})
		})},

	{path: "cluster", summary: "Show the store, this node's revision and every node of the fleet.", example: "fronttier ctl cluster", max: 0,
		flags: noFlags(func(r *invocation, _ []string) error {
			var ci clusterInfo
			return r.show(http.MethodGet, "/cluster", nil, &ci, func(w io.Writer) { clusterTable(w, ci, r.cli.Now()) })
		})},
}

func noFlags(run func(*invocation, []string) error) func(*flag.FlagSet) func(*invocation, []string) error {
	return func(*flag.FlagSet) func(*invocation, []string) error { return run }
}

func rolloutAction(verb, summary string) command {
	return command{path: "rollout " + verb, args: "DOMAIN", summary: summary, example: "fronttier ctl rollout " + verb + " example.com",
		min: 1, max: 1,
		flags: noFlags(func(r *invocation, a []string) error {
			var ro rollout
			return r.show(http.MethodPost, "/domains/"+seg(a[0])+"/rollout/"+verb, nil, &ro, func(w io.Writer) { rolloutDetail(w, ro) })
		})}
}

// show calls the API and prints its answer: as is with -o json, else
// decoded into out and drawn by table.
func (r *invocation) show(method, path string, body, out any, table func(io.Writer)) error {
	if r.json {
		data, err := r.api.do(r.ctx, method, path, body)
		if err != nil {
			return err
		}
		return writeRaw(r.out, data)
	}
	if _, err := r.api.call(r.ctx, method, path, body, out); err != nil {
		return err
	}
	table(r.out)
	return nil
}

// remove sends DELETE path and says done (nothing with -o json: 204).
func (r *invocation) remove(path, done string) error {
	data, err := r.api.do(r.ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	if r.json {
		return writeRaw(r.out, data)
	}
	fmt.Fprintln(r.out, done)
	return nil
}

func writeRaw(w io.Writer, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	_, err := w.Write(data)
	return err
}

// watch re-reads the rollout at path every WatchInterval and prints it
// when it changed (clearing the screen first on a terminal) until its
// state is final or the context ends (Ctrl-C: exit 0).
func (r *invocation) watch(path string) error {
	t := time.NewTicker(r.cli.WatchInterval)
	defer t.Stop()
	var last []byte
	for {
		data, err := r.api.do(r.ctx, http.MethodGet, path, nil)
		if err != nil {
			if r.ctx.Err() != nil {
				return nil
			}
			return err
		}
		var ro rollout
		if err := json.Unmarshal(data, &ro); err != nil {
			return fmt.Errorf("GET %s: decode the answer: %w", path, err)
		}
		var buf bytes.Buffer
		if r.json {
			writeRaw(&buf, data)
		} else {
			rolloutDetail(&buf, ro)
		}
		if !bytes.Equal(buf.Bytes(), last) {
			if r.cli.Redraw {
				io.WriteString(r.out, "\033[H\033[2J")
			} else if last != nil && !r.json {
				fmt.Fprintln(r.out)
			}
			r.out.Write(buf.Bytes())
			last = buf.Bytes()
		}
		if final(ro.State) {
			return nil
		}
		select {
		case <-r.ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func splitTags(s string) []string {
	tags := []string{}
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

func newTab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0) }
