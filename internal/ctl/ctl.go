package ctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// CLI runs "fronttier ctl" commands. Zero fields take the process's
// defaults (os.Getenv, os.ReadFile, http.DefaultClient, one second).
type CLI struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	ReadFile       func(string) ([]byte, error)
	HTTPClient     *http.Client
	// WatchInterval is how often "rollout status -w" re-reads the rollout.
	WatchInterval time.Duration
	// Now is the clock for "last seen" ages.
	Now func() time.Time
	// Redraw, when true, clears the screen before each snapshot of
	// "status -w" (a terminal); else a snapshot is printed when it changed.
	Redraw bool
}

// Main runs "fronttier ctl" with the process's environment.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &CLI{Stdout: stdout, Stderr: stderr}
	if f, ok := stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			c.Redraw = true
		}
	}
	return c.Run(ctx, args)
}

// usageError is a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// command is one leaf command, e.g. "domains ls".
type command struct {
	path    string // "domains ls"
	args    string // "DOMAIN TAG [--force]"
	summary string
	example string
	min     int // positional arguments
	max     int // -1: any number
	// flags registers the command's own flags and returns what runs it.
	flags func(fs *flag.FlagSet) func(r *invocation, args []string) error
}

// invocation is what a command runs with.
type invocation struct {
	ctx  context.Context
	cli  *CLI
	api  *client
	json bool
	out  io.Writer
}

// globals are the flags every command takes.
type globals struct {
	api, tokenFile, output string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.api, "api", g.api, "management API address (env FRONTTIER_API; default "+DefaultAPI+")")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "file holding the API token (else env FRONTTIER_TOKEN)")
	fs.StringVar(&g.output, "o", g.output, "output: table or json (the API's JSON as is)")
}

// parse parses args with flags allowed between positional arguments and
// returns the positional ones. "--" ends the flags.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		// Split off a "--" ourselves: flag.Parse swallows it silently.
		rest := args
		var after []string
		for i, a := range args {
			if a == "--" {
				rest, after = args[:i], args[i+1:]
				break
			}
			if !strings.HasPrefix(a, "-") || a == "-" {
				break
			}
		}
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		left := fs.Args()
		if after != nil {
			return append(append(pos, left...), after...), nil
		}
		if len(left) == 0 {
			return pos, nil
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

// Run runs one command line (the words after "ctl") and returns the exit
// code: 0, 1 for a failed call of the API, 2 for a usage error.
func (c *CLI) Run(ctx context.Context, args []string) int {
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.ReadFile == nil {
		c.ReadFile = os.ReadFile
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if c.WatchInterval <= 0 {
		c.WatchInterval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	g := &globals{output: "table"}

	// Global flags before the command.
	top := flag.NewFlagSet("fronttier ctl", flag.ContinueOnError)
	top.SetOutput(c.Stderr)
	top.Usage = func() {}
	g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.topHelp(c.Stdout)
			return 0
		}
		fmt.Fprintln(c.Stderr, "usage: fronttier ctl [--api URL] [--token-file FILE] [-o json] COMMAND ... (see fronttier ctl --help)")
		return 2
	}
	args = top.Args()
	if len(args) == 0 || args[0] == "help" {
		if len(args) == 0 {
			c.topHelp(c.Stderr)
			return 2
		}
		c.topHelp(c.Stdout)
		return 0
	}
	cmd, rest, group := lookup(args)
	if cmd == nil {
		if group != "" {
			if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help" || rest[0] == "help") {
				c.groupHelp(c.Stdout, group)
				return 0
			}
			if len(rest) == 0 {
				fmt.Fprintf(c.Stderr, "fronttier ctl %s: missing command\n", group)
			} else {
				fmt.Fprintf(c.Stderr, "fronttier ctl %s: unknown command %q\n", group, rest[0])
			}
			c.groupHelp(c.Stderr, group)
			return 2
		}
		fmt.Fprintf(c.Stderr, "fronttier ctl: unknown command %q\n", args[0])
		c.topHelp(c.Stderr)
		return 2
	}

	fs := flag.NewFlagSet("fronttier ctl "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	fs.Usage = func() {}
	g.register(fs)
	run := cmd.flags(fs)
	pos, err := parse(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cmd.help(c.Stdout, fs)
			return 0
		}
		fmt.Fprintf(c.Stderr, "usage: fronttier ctl %s %s (see --help)\n", cmd.path, cmd.args)
		return 2
	}
	if len(pos) < cmd.min || (cmd.max >= 0 && len(pos) > cmd.max) {
		fmt.Fprintf(c.Stderr, "fronttier ctl %s: wrong number of arguments\nusage: fronttier ctl %s %s (see --help)\n", cmd.path, cmd.path, cmd.args)
		return 2
	}
	inv, err := c.invocation(ctx, g)
	if err == nil {
		err = run(inv, pos)
	}
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(c.Stderr, "fronttier ctl %s: %s\nusage: fronttier ctl %s %s (see --help)\n", cmd.path, ue.msg, cmd.path, cmd.args)
			return 2
		}
		fmt.Fprintf(c.Stderr, "fronttier ctl %s: %v\n", cmd.path, err)
		return 1
	}
	return 0
}

// invocation resolves the API address, the token and the output format.
func (c *CLI) invocation(ctx context.Context, g *globals) (*invocation, error) {
	inv := &invocation{ctx: ctx, cli: c, out: c.Stdout}
	switch g.output {
	case "table", "":
	case "json":
		inv.json = true
	default:
		return nil, usagef("-o %q: want table or json", g.output)
	}
	addr := g.api
	if addr == "" {
		addr = c.Getenv("FRONTTIER_API")
	}
	if addr == "" {
		addr = DefaultAPI
	}
	base, err := apiBase(addr)
	if err != nil {
		return nil, usagef("%v", err)
	}
	token := c.Getenv("FRONTTIER_TOKEN")
	if g.tokenFile != "" {
		b, err := c.ReadFile(g.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	inv.api = &client{base: base, token: strings.TrimSpace(token), hc: c.HTTPClient}
	return inv, nil
}

// lookup finds the command args name: the leaf, the words after it; or,
// when args name a group but no leaf of it, the group.
func lookup(args []string) (cmd *command, rest []string, group string) {
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.path)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.path {
			return c, args[len(words):], ""
		}
	}
	for _, c := range commands {
		words := strings.Fields(c.path)
		if len(words) > 1 && words[0] == args[0] {
			return nil, args[1:], words[0]
		}
	}
	return nil, nil, ""
}

func (c *command) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: fronttier ctl %s %s\n\n%s\n\nexample:\n  %s\n\nflags:\n", c.path, c.args, c.summary, c.example)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func (c *CLI) groupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "usage: fronttier ctl %s COMMAND [flags] (each takes --help)\n\ncommands:\n", group)
	tw := newTab(w)
	for _, cmd := range commands {
		if strings.HasPrefix(cmd.path, group+" ") {
			fmt.Fprintf(tw, "  %s %s\t%s\n", cmd.path, cmd.args, firstLine(cmd.summary))
		}
	}
	tw.Flush()
	for _, cmd := range commands {
		if strings.HasPrefix(cmd.path, group+" ") {
			fmt.Fprintf(w, "\nexample:\n  %s\n", cmd.example)
			break
		}
	}
}

func (c *CLI) topHelp(w io.Writer) {
	fmt.Fprintf(w, `usage: fronttier ctl [--api URL] [--token-file FILE] [-o json] COMMAND [ARGS]

The management API's command line client. The API's address comes from
--api, FRONTTIER_API or %s; its token from --token-file or
FRONTTIER_TOKEN. Tables by default; -o json prints the API's JSON as is.
Exit code 1 when the API refuses (its message on stderr), 2 for a usage
error. Every command takes --help.

commands:
`, DefaultAPI)
	tw := newTab(w)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", cmd.path, cmd.args, firstLine(cmd.summary))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nexample:\n  FRONTTIER_TOKEN=secret fronttier ctl switch example.com green\n")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
