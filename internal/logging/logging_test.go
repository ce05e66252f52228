package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false},
		{"trace", LevelTrace, false},
		{"TRACE", LevelTrace, false},
		{"debug", slog.LevelDebug, false},
		{"Debug", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{" info ", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"WARN", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"warning", 0, true},
		{"fatal", 0, true},
		{"3", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseLevel(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseLevel(%q) = %v, want error", tt.in, got)
				continue
			}
			for _, name := range []string{"trace", "debug", "info", "warn", "error"} {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("ParseLevel(%q) error %q does not name %q", tt.in, err, name)
				}
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	var buf bytes.Buffer
	for name, o := range map[string]Options{
		"level":         {Level: "loud"},
		"format":        {Format: "xml"},
		"output":        {Output: "syslog"},
		"file no path":  {Output: "file"},
		"negative size": {Output: "file", FilePath: filepath.Join(t.TempDir(), "x.log"), MaxSizeMB: -1},
	} {
		if l, err := New(o, &buf); err == nil {
			l.Close()
			t.Errorf("%s: New(%+v) succeeded, want error", name, o)
		}
	}
	if _, err := New(Options{}, nil); err == nil {
		t.Error("New with console output and nil writer succeeded, want error")
	}
}

func TestTextFormat(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Format: "TEXT"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Info("hello world", "backend", "a")
	out := buf.String()
	for _, want := range []string{"level=INFO", `msg="hello world"`, "backend=a", "time="} {
		if !strings.Contains(out, want) {
			t.Errorf("text output %q lacks %q", out, want)
		}
	}
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Errorf("text output looks like JSON: %q", out)
	}
}

func TestJSONFormat(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Format: "json", Level: "debug"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Debug("picked", "backend", "b", "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("output %q is not one JSON object: %v", buf.String(), err)
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "picked" || rec["backend"] != "b" || rec["n"] != 3.0 {
		t.Errorf("record = %v", rec)
	}
	if _, ok := rec["time"]; !ok {
		t.Errorf("record lacks time: %v", rec)
	}
}

func TestTraceLevelName(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		l, err := New(Options{Format: format, Level: "trace"}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		l.Log(t.Context(), LevelTrace, "very chatty")
		l.Log(t.Context(), LevelTrace+1, "slightly less")
		out := buf.String()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: got %d lines, want 2: %q", format, len(lines), out)
		}
		want := []string{"TRACE", "TRACE+1"}
		for i, line := range lines {
			var got string
			if format == "json" {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("json line %q: %v", line, err)
				}
				got, _ = rec["level"].(string)
			} else {
				for f := range strings.FieldsSeq(line) {
					if v, ok := strings.CutPrefix(f, "level="); ok {
						got = v
					}
				}
			}
			if got != want[i] {
				t.Errorf("%s: level of %q = %q, want %q", format, line, got, want[i])
			}
		}
	}
}

func TestLevelChangeTakesEffect(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Level: "warn"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %q", buf.String())
	}
	l.Level.Set(slog.LevelDebug)
	l.Debug("shown")
	if !strings.Contains(buf.String(), "shown") {
		t.Fatalf("debug not logged after Level.Set(debug): %q", buf.String())
	}
	buf.Reset()
	if err := l.SetLevel("error"); err != nil {
		t.Fatal(err)
	}
	l.Warn("hidden again")
	if buf.Len() != 0 {
		t.Fatalf("warn logged at error level: %q", buf.String())
	}
	if err := l.SetLevel("nope"); err == nil {
		t.Fatal("SetLevel(nope) succeeded")
	}
	if got := l.Level.Level(); got != slog.LevelError {
		t.Fatalf("level after failed SetLevel = %v, want ERROR", got)
	}
}

func TestFileOutput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "fronttier.log")
	var console bytes.Buffer
	l, err := New(Options{Output: "file", FilePath: path, Format: "json", MaxSizeMB: 1, MaxBackups: 2}, &console)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("New did not create the log file: %v", err)
	}
	l.Info("to the file")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l.Info("after close") // dropped, must not reopen the file or panic

	if console.Len() != 0 {
		t.Errorf("file logger wrote to the console: %q", console.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"msg":"to the file"`) {
		t.Errorf("log file = %q, want the record", data)
	}
	if strings.Contains(string(data), "after close") {
		t.Errorf("record logged after Close reached the file: %q", data)
	}
}

func TestFileOutputBadPath(t *testing.T) {
	dir := t.TempDir()
	// A regular file where a directory is needed.
	blocker := filepath.Join(dir, "blocker")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"parent is a file": filepath.Join(blocker, "x.log"),
		"path is a dir":    dir,
	} {
		l, err := New(Options{Output: "file", FilePath: path}, nil)
		if err == nil {
			l.Close()
			t.Errorf("%s: New succeeded for %s, want error", name, path)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the path", name, err)
		}
	}

	if os.Geteuid() != 0 { // root ignores permissions
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		_, err := New(Options{Output: "file", FilePath: filepath.Join(ro, "x.log")}, nil)
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("read-only directory: err = %v, want fs.ErrPermission", err)
		}
	}
}

func TestConsoleCloseIsSafe(t *testing.T) {
	l, err := New(Options{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDiscard(t *testing.T) {
	l := Discard()
	l.Error("nobody hears this")
	if l.Enabled(t.Context(), slog.LevelError) {
		t.Error("Discard logger reports levels as enabled")
	}
}

// TestJSONDurations: a duration is logged as "1m30s" in JSON, not as
// integer nanoseconds, whoever logs it.
func TestJSONDurations(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := New(Options{Format: "json", Output: "console"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Logger.Info("waited", "retry_in", 90*time.Second, slog.Group("g", slog.Duration("d", time.Millisecond)))
	if out := buf.String(); !strings.Contains(out, `"retry_in":"1m30s"`) || !strings.Contains(out, `"d":"1ms"`) {
		t.Errorf("JSON line %s: want durations as strings", out)
	}
}
