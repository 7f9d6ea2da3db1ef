// Package asnobody lets a test that needs file permissions to hold run
// itself again as the user nobody when the suite runs as root (root
// ignores permissions). Tests only.
package asnobody

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Rerun runs the test name of this test binary again as nobody (uid and gid
// 65534), from a copy of the binary nobody can execute, and fails t unless
// it passed there.
func Rerun(t testing.TB, name string) {
	t.Helper()
	if os.Getenv("VELOHUNT_TEST_AS_NOBODY") != "" {
		t.Fatal("still root after switching to nobody")
	}
	dir, err := os.MkdirTemp("", "velohunt-test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "test.bin")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VELOHUNT_TEST_AS_NOBODY=1", "TMPDIR=/tmp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("as nobody, %s did not pass:\n%s", name, out)
	}
}
