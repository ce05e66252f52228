// Package logging builds fronttier's process logger (log/slog, text or JSON,
// to the console or a rotating file) and its access log (one JSON line per
// proxied request).
//
// Rotation is done by lumberjack. Both loggers open their file once when they
// are built, so a bad path is reported at start-up rather than at the first
// log line.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Options says how to build the process logger. Its fields mirror the
// [logging] section of the configuration file.
type Options struct {
	Level    string // trace, debug, info, warn, error ("" = info); case-insensitive
	Format   string // text, json ("" = text); case-insensitive
	Output   string // console, file ("" = console); case-insensitive
	FilePath string // required when Output == "file"

	// Rotation, passed to lumberjack; 0 means lumberjack's default
	// (100 MB, keep every backup, never expire by age).
	MaxSizeMB, MaxBackups, MaxAgeDays int
	// Compress gzips rotated files.
	Compress bool
}

// LevelTrace is the level for very chatty diagnostics, below
// slog.LevelDebug. Loggers built by New print it as "TRACE".
const LevelTrace = slog.Level(-8)

// ParseLevel maps a configured level name (trace, debug, info, warn, error;
// case-insensitive, surrounding spaces ignored) to its slog level. The empty
// string means info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("logging: unknown level %q (accepted: trace, debug, info, warn, error)", s)
}

// Logger is the process logger plus what is needed to change its level at
// run time and to close its file. Use the embedded *slog.Logger to log.
type Logger struct {
	*slog.Logger
	// Level is the minimum level that is written; Set it to change the level
	// of a running process (for example on configuration reload).
	Level *slog.LevelVar

	file *rotatingFile // nil for console output
}

// New builds the process logger described by o. console is where Output
// "console" writes (the caller passes os.Stderr); it is not used for Output
// "file", which writes through a rotating file at o.FilePath whose parent
// directory is created if missing.
func New(o Options, console io.Writer) (*Logger, error) {
	lvl, err := ParseLevel(o.Level)
	if err != nil {
		return nil, err
	}
	var newHandler func(io.Writer, *slog.HandlerOptions) slog.Handler
	switch strings.ToLower(strings.TrimSpace(o.Format)) {
	case "", "text":
		newHandler = func(w io.Writer, ho *slog.HandlerOptions) slog.Handler { return slog.NewTextHandler(w, ho) }
	case "json":
		newHandler = func(w io.Writer, ho *slog.HandlerOptions) slog.Handler { return slog.NewJSONHandler(w, ho) }
	default:
		return nil, fmt.Errorf("logging: unknown format %q (accepted: text, json)", o.Format)
	}
	lv := new(slog.LevelVar)
	lv.Set(lvl)

	var (
		w    io.Writer
		file *rotatingFile
	)
	switch strings.ToLower(strings.TrimSpace(o.Output)) {
	case "", "console":
		if console == nil {
			return nil, errors.New("logging: console output needs a writer")
		}
		w = console
	case "file":
		if o.FilePath == "" {
			return nil, errors.New("logging: output \"file\" needs a file path")
		}
		file, err = openRotating(o.FilePath, o)
		if err != nil {
			return nil, err
		}
		w = file
	default:
		return nil, fmt.Errorf("logging: unknown output %q (accepted: console, file)", o.Output)
	}

	h := newHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: replaceAttr})
	return &Logger{Logger: slog.New(h), Level: lv, file: file}, nil
}

// SetLevel parses name as ParseLevel does and, if it is valid, makes it the
// logger's level.
func (l *Logger) SetLevel(name string) error {
	lvl, err := ParseLevel(name)
	if err != nil {
		return err
	}
	l.Level.Set(lvl)
	return nil
}

// Close closes the log file, if any. Records logged after Close are dropped.
// It is safe to call on console loggers and more than once.
func (l *Logger) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// Discard returns a logger that drops everything, for tests and for
// components built without a logger.
func Discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

// replaceAttr writes durations as durations ("1m30s", as text logs do,
// not JSON's integer nanoseconds, whoever logs them: our packages or a
// library's) and names levels below debug TRACE (TRACE+1 and so on for
// levels between trace and debug) instead of slog's "DEBUG-4".
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	if a.Key != slog.LevelKey || len(groups) != 0 {
		return a
	}
	lvl, ok := a.Value.Any().(slog.Level)
	if !ok || lvl >= slog.LevelDebug {
		return a
	}
	if lvl == LevelTrace {
		return slog.String(a.Key, "TRACE")
	}
	return slog.String(a.Key, fmt.Sprintf("TRACE%+d", int(lvl-LevelTrace)))
}

// rotatingFile is a lumberjack.Logger that stays closed once closed:
// lumberjack itself would silently reopen the file on the next write.
type rotatingFile struct {
	mu     sync.Mutex
	lj     *lumberjack.Logger
	closed bool
}

// openRotating creates path's parent directory (0o755) if needed, checks that
// path can be opened for appending, and returns a rotating writer for it
// configured with o's rotation fields.
func openRotating(path string, o Options) (*rotatingFile, error) {
	if o.MaxSizeMB < 0 || o.MaxBackups < 0 || o.MaxAgeDays < 0 {
		return nil, fmt.Errorf("logging: rotation settings for %s must not be negative", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("logging: create directory for %s: %w", path, err)
	}
	// lumberjack opens lazily and reports errors only from Write; open the
	// file once here so that an unwritable path fails at start-up.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logging: log file %s is not writable: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("logging: log file %s: %w", path, err)
	}
	return &rotatingFile{lj: &lumberjack.Logger{
		Filename:   path,
		MaxSize:    o.MaxSizeMB,
		MaxBackups: o.MaxBackups,
		MaxAge:     o.MaxAgeDays,
		Compress:   o.Compress,
	}}, nil
}

// Write appends p to the file, rotating it first if it would grow past its
// maximum size. It fails with os.ErrClosed after Close.
func (r *rotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, os.ErrClosed
	}
	return r.lj.Write(p)
}

// Close closes the file. Later calls do nothing.
func (r *rotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if err := r.lj.Close(); err != nil {
		return fmt.Errorf("logging: close %s: %w", r.lj.Filename, err)
	}
	return nil
}
