// Command fronttier is a reverse proxy for many domains on one front door,
// switching each domain between tagged sets of backends with no downtime.
//
//	fronttier [--config FILE]            run the proxy (default config.toml)
//	fronttier validate [--config FILE]   check a configuration and exit
//	fronttier version                    print the version
//	fronttier ctl COMMAND ...            the management API's client (ctl --help)
//
// SIGTERM and SIGINT drain requests in flight and exit 0; SIGHUP re-reads
// the configuration file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"fronttier/internal/app"
	"fronttier/internal/config"
	"fronttier/internal/ctl"
	"fronttier/internal/gcgoal"
)

// version is set at build time with -ldflags "-X main.version=...";
// "dev" means unset, and the version command then shows the module's.
var version = "dev"

// versionLine is what the version command prints: "fronttier VERSION", and
// the VCS revision (12 characters), its time and "modified" (uncommitted
// changes) when the build recorded them, e.g.
//
//	fronttier v0.0.0-20261203180000-abc123def456 (revision abc123def456, 2026-12-03T18:00:00Z, modified)
//
// VERSION is v when set with -ldflags, else the main module's version
// from bi ("(devel)" for a build inside the repository). bi may be nil.
func versionLine(v string, bi *debug.BuildInfo) string {
	if v == "dev" && bi != nil && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	line := "fronttier " + v
	if bi == nil {
		return line
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return line
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	details := "revision " + rev
	if at != "" {
		details += ", " + at
	}
	if modified {
		details += ", modified"
	}
	return line + " (" + details + ")"
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ctl" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return ctl.Main(ctx, args[1:], stdout, stderr)
	}
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("fronttier "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.toml", "configuration file")
	fs.StringVar(path, "c", "config.toml", "configuration file (shorthand)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fronttier [validate|version] [--config FILE]\n       fronttier ctl COMMAND ... (fronttier ctl --help)\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fronttier: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	switch cmd {
	case "run":
		return serve(*path, stderr)
	case "validate":
		return validate(*path, stdout, stderr)
	case "version":
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprintln(stdout, versionLine(version, bi))
		return 0
	default:
		fmt.Fprintf(stderr, "fronttier: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
}

// validate prints every problem of the file, one per line, and exits 1;
// or its warnings (a tag no backend carries), one per line, then "ok".
func validate(path string, stdout, stderr io.Writer) int {
	if err := app.Validate(path); err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", path)
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  %s\n", strings.TrimPrefix(line, "config "+path+": "))
		}
		return 1
	}
	if cfg, err := config.Load(path); err == nil {
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// serve runs the proxy until SIGTERM or SIGINT.
func serve(path string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The collector's goal, unless GOGC is set: GOGC=400 while the live
	// heap and stacks are small (7% more requests per second on peers.sh
	// than 100, for about 12 MiB), then 32 MiB above the live heap, down
	// to Go's default 100 (see internal/gcgoal and BENCHMARKS.md).
	if os.Getenv("GOGC") == "" {
		go gcgoal.Run(ctx, gcgoal.Options{})
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	err := app.Run(ctx, app.Options{ConfigPath: path, Console: stderr, Reload: reload, Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "fronttier: %v\n", err)
		return 1
	}
	return 0
}
