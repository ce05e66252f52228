package etcdtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rootModule is the module path of the repository's root go.mod, the one
// that holds tools/etcd.
const rootModule = "fronttier"

// findBinary returns the etcd server binary the cluster runs: $ETCD_BIN,
// else $(go env GOPATH)/bin/etcd, else etcd on PATH. When none exists it
// fails the test under CI (.ci/run builds the binary, so a missing one is a
// broken CI setup) and otherwise builds it from tools/etcd into the user's
// cache directory, so that a plain `go test` works on a developer machine.
func findBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ETCD_BIN"); p != "" {
		if !isFile(p) {
			t.Fatalf("ETCD_BIN=%s: no such file", p)
		}
		return p
	}
	if out, err := exec.Command(goCommand(), "env", "GOPATH").Output(); err == nil {
		for dir := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			if p := filepath.Join(dir, "bin", "etcd"); dir != "" && isFile(p) {
				return p
			}
		}
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("etcd not found in $ETCD_BIN, $(go env GOPATH)/bin or PATH; run .ci/run, which builds it from tools/etcd")
	}
	p, err := buildBinary(t)
	if err != nil {
		t.Fatalf("etcd not found in $ETCD_BIN, $(go env GOPATH)/bin or PATH, and building it failed: %v", err)
	}
	return p
}

// buildBinary builds tools/etcd into the user cache directory, under a name
// derived from the tool's go.mod, go.sum and main.go, and returns its path.
// A build for the same sources is reused; concurrent builds (parallel test
// binaries) each write a temporary file and rename it into place, so a
// reader never sees half a binary.
func buildBinary(t testing.TB) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "tools", "etcd")
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", fmt.Errorf("read tools/etcd: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "fronttier-etcdtest")
	bin := filepath.Join(dir, "etcd-"+hex.EncodeToString(h.Sum(nil))[:16])
	if isFile(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create etcd cache directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return "", fmt.Errorf("create etcd build file: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	t.Logf("building etcd from %s into %s (the first build takes a few minutes)", src, bin)
	cmd := exec.Command(goCommand(), "build", "-o", tmp.Name(), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build in %s: %w\n%s", src, err, out)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("install etcd build: %w", err)
	}
	return bin, nil
}

// repoRoot walks up from the working directory to the directory whose
// go.mod declares the module fronttier.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if modulePath(filepath.Join(dir, "go.mod")) == rootModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod declaring module " + rootModule + " above the working directory")
		}
		dir = parent
	}
}

// modulePath returns the module path a go.mod file declares, or "" when the
// file is missing or has no module line.
func modulePath(gomod string) string {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// goCommand is the go command: the one on PATH, else the one in
// $GOROOT/bin.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// isFile reports whether p names an existing regular file.
func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// tail returns the last n lines of the file at p (at most its last 64 KiB),
// or a note saying why it could not be read.
func tail(p string, n int) string {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	const maxTail = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > maxTail {
		if _, err := f.Seek(-maxTail, io.SeekEnd); err != nil {
			return fmt.Sprintf("(%v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
