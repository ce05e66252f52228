package contrib_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerBuild matches the Dockerfile's build step: its environment, go
// build's flags (with the VERSION argument's expansion) and the package.
var dockerBuild = regexp.MustCompile(`RUN (CGO_ENABLED=0) go build (-trimpath) -ldflags="-s -w \$\{VERSION:\+-X main\.version=\$\{VERSION\}\}" \\\s+-o /out/fronttier (\./cmd/fronttier)`)

// TestDockerfileBuild runs the Dockerfile's build step outside a container
// (no Docker here): the same command must give a static binary, which the
// distroless/static image needs (it has no C library), and carry the
// version given as a build argument.
func TestDockerfileBuild(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := dockerBuild.FindStringSubmatch(string(src))
	if m == nil {
		t.Fatalf("the Dockerfile's build step is not the one this test runs; update both:\n%s", src)
	}
	for _, want := range []string{"FROM gcr.io/distroless/static-debian12:nonroot", "USER nonroot:nonroot", `ENTRYPOINT ["/usr/local/bin/fronttier"]`} {
		if !strings.Contains(string(src), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	bin := filepath.Join(t.TempDir(), "fronttier")
	cmd := exec.Command("go", "build", m[2], "-ldflags=-s -w -X main.version=v9.8.7", "-o", bin, m[3])
	cmd.Dir = root
	cmd.Env = append(os.Environ(), m[1])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (program header %v): distroless/static cannot run it", p.Type)
		}
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fronttier v9.8.7") {
		t.Errorf("fronttier version = %q, %v; want it to name v9.8.7", out, err)
	}
}
