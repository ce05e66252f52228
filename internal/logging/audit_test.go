package logging

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenAuditLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "audit.log")
	w, err := OpenAuditLog(path, Options{MaxSizeMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`{"user":"ops"}` + "\n", `{"user":"admin"}` + "\n"} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"user\":\"ops\"}\n{\"user\":\"admin\"}\n"; string(got) != want {
		t.Errorf("audit log = %q, want %q", got, want)
	}
	if _, err := w.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
	if _, err := OpenAuditLog(filepath.Join(path, "x"), Options{}); err == nil {
		t.Error("OpenAuditLog below a file succeeded")
	}
}
