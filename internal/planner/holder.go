package planner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// A launch claim names the process that holds it. A launcher that finds a
// claim whose holder is gone (killed, crashed, its machine rebooted) takes
// the hunt over at once instead of waiting the lease out: a serve restarted
// after kill -9 launches what its previous run had claimed without a
// two-minute gap. The FindHuntByTag look-up of a second attempt still
// keeps a hunt the dead process created from being created twice.
//
// A holder is "boot id/pid namespace/pid/start time": the boot id tells a
// claim from before a reboot, the start time (clock ticks since boot) a
// pid the kernel gave to a newer process. A holder in another pid
// namespace (another container sharing the database) cannot be checked
// and is never taken for gone: its lease runs out as before.

// holderOf names a process, or "" when /proc cannot tell (then its claims
// are anonymous and only their lease ends them).
func holderOf(pid int) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return ""
	}
	start, _, err := procStat(pid)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s/%s/%d/%d", strings.TrimSpace(string(boot)), ns, pid, start)
}

// holderGone reports whether the process a claim names has ended. It
// answers false whenever it cannot be sure.
func holderGone(holder string) bool {
	parts := strings.Split(holder, "/")
	if len(parts) != 4 {
		return false
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return false
	}
	if parts[0] != strings.TrimSpace(string(boot)) {
		return true
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || parts[1] != ns {
		return false
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil || pid <= 0 {
		return false
	}
	want, err := strconv.ParseUint(parts[3], 10, 64)
	if err != nil {
		return false
	}
	start, state, err := procStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	// A zombie (state Z) was killed but not yet reaped by its parent.
	return err == nil && (start != want || state == "Z")
}

// procStat reads a process's start time, in clock ticks since boot (field
// 22 of /proc/<pid>/stat), and its state (field 3). The command name
// (field 2) may hold spaces and parentheses, so the fields are counted
// from its closing one.
func procStat(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3, so field 22 is f[19].
	if len(f) < 20 {
		return 0, "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err
}
