package planner

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHolderGone(t *testing.T) {
	self := holderOf(os.Getpid())
	if strings.Count(self, "/") != 3 {
		t.Fatalf("holder %q", self)
	}
	if holderGone(self) {
		t.Fatal("this process was taken for gone")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := holderOf(cmd.Process.Pid)
	if child == "" || holderGone(child) {
		t.Fatalf("a running child (%q) was taken for gone", child)
	}
	parts := strings.Split(child, "/")
	// The same pid started at another time is another process.
	if !holderGone(strings.Join([]string{parts[0], parts[1], parts[2], parts[3] + "0"}, "/")) {
		t.Fatal("a reused pid was taken for the holder")
	}
	// A claim from before a reboot.
	if !holderGone(strings.Join([]string{"00000000-0000-0000-0000-000000000000", parts[1], parts[2], parts[3]}, "/")) {
		t.Fatal("a claim from another boot was kept")
	}
	// Another pid namespace cannot be checked: never gone.
	if holderGone(strings.Join([]string{parts[0], "pid:[1]", parts[2], parts[3] + "0"}, "/")) {
		t.Fatal("a holder of another pid namespace was taken for gone")
	}
	for _, bad := range []string{"", "x", "a/b/c", "a/b/c/d/e"} {
		if holderGone(bad) {
			t.Fatalf("unreadable holder %q taken for gone", bad)
		}
	}
	// Killed but not reaped: a zombie is gone.
	cmd.Process.Signal(syscall.SIGKILL)
	for range 200 {
		if _, state, err := procStat(cmd.Process.Pid); err == nil && state == "Z" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !holderGone(child) {
		t.Fatal("a killed, unreaped child was not taken for gone")
	}
	cmd.Wait()
	if !holderGone(child) {
		t.Fatal("a reaped child was not taken for gone")
	}
}
