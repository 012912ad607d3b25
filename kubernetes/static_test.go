package kubernetes_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The images (Dockerfile.servingkit, Dockerfile.queue) copy one binary onto
// a distroless static base, which has no C library: the binaries must be
// static. No registry is reachable where these tests run, so docker build
// is not run; this test builds both commands as the Dockerfiles do
// (CGO_ENABLED=0) and checks that the ELF files have no interpreter and no
// dynamic section, and that each Dockerfile builds its command that way
// onto that base, as nonroot, and is the image the manifests name.
func TestStaticBuild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("static ELF check: linux only")
	}
	if testing.Short() {
		t.Skip("builds two binaries; skipped with -short")
	}
	images := map[string]string{
		"servingkit": "ghcr.io/servingkit/servingkit:dev",
		"queue":      "ghcr.io/servingkit/queue:dev",
	}
	manifests := ""
	for _, f := range []string{"deploy/servingkit.yaml", "deploy/hello.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		manifests += string(b)
	}
	dir := t.TempDir()
	for cmd, image := range images {
		df, err := os.ReadFile("Dockerfile." + cmd)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^FROM golang:\S+ AS build$`),
			regexp.MustCompile(`(?m)^RUN cd kubernetes && GOWORK=off CGO_ENABLED=0 go build .* -o /out/` + cmd + ` \./cmd/` + cmd + `$`),
			regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static-debian\d+:nonroot$`),
			regexp.MustCompile(`(?m)^USER nonroot:nonroot$`),
			regexp.MustCompile(`(?m)^ENTRYPOINT \["/` + cmd + `"\]$`),
			regexp.MustCompile(`-t ` + regexp.QuoteMeta(image) + ` `),
		} {
			if !want.Match(df) {
				t.Errorf("Dockerfile.%s: no line matching %s", cmd, want)
			}
		}
		if !strings.Contains(manifests, "image: "+image) {
			t.Errorf("deploy/: no container with image %s", image)
		}

		out := filepath.Join(dir, cmd)
		build := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/"+cmd)
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 go build ./cmd/%s: %v\n%s", cmd, err, b)
		}
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("cmd/%s: ELF program header %v: the binary is dynamically linked", cmd, p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("cmd/%s: imports shared libraries %v", cmd, libs)
		}
		f.Close()
	}
}
