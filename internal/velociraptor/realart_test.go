package velociraptor_test

// An unprivileged user's attacks on the endpoint artifacts, on the real
// Linux and Windows-impersonating clients (from an adversary review; the
// first two File attacks held before the File artifact stopped following
// links and walked deeper than 30 folders). Each test plants as uid 65534
// and checks what a correct artifact reports.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/templates"
)

func artEnv(t *testing.T) *realHash {
	r := realHashEnv(t)
	defs, err := templates.Artifacts("")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"Custom.Velohunt.File", "Custom.Velohunt.Network", "Custom.Velohunt.Domain"} {
		if _, err := r.c.SetArtifact(context.Background(), r.org, defs[a]); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// asNobody runs a shell command as the unprivileged user.
func asNobody(t *testing.T, script string) {
	t.Helper()
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

func jsonList(v ...string) string { b, _ := json.Marshal(v); return string(b) }

func covProblems(cov []map[string]any) string {
	var s []string
	for _, c := range cov {
		b, _ := json.Marshal(c["Coverage"])
		s = append(s, string(b))
	}
	return strings.Join(s, "\n")
}

// A file named as the IOC 31 folders below a TargetGlobs root is found by
// name ("**" alone stops at 30 folders), or the coverage row says it could
// not be searched.
func TestRealFileByNameDeep(t *testing.T) {
	r := artEnv(t)
	dir := quietDir(t)
	os.Chown(dir, nobody, nobody)
	asNobody(t, fmt.Sprintf(`cd %s && mkdir -p shallow && : > shallow/evil-shallow.bin && d=deep; for i in $(seq 1 31); do d=$d/d; done; mkdir -p $d && : > $d/evil-deep.bin`, dir))
	got := r.hunt(t, "Custom.Velohunt.File", map[string]string{
		"IOCs": jsonList("evil-shallow.bin", "evil-deep.bin"), "TargetGlobs": jsonList(dir + "/**")})
	t.Logf("rows: %v\ncoverage:\n%s", hits(got.rows), covProblems(got.coverage))
	found := map[string]bool{}
	for _, row := range got.rows {
		found[fmt.Sprint(row["IOC"])] = true
	}
	if !found["evil-shallow.bin"] {
		t.Fatalf("control: shallow file not found")
	}
	if !found["evil-deep.bin"] {
		for _, c := range got.coverage {
			if p, _ := c["Coverage"].(map[string]any)["Problem"].(string); p != "" {
				return // reported: not clean
			}
		}
		t.Errorf("evil-deep.bin at depth 32 under %s/** not found and coverage reports no problem: the host reads clean", dir)
	}
}

// A link to its own folder: the by-name walk does not follow it (one hit
// for one file, not one per path through the link).
func TestRealFileByNameSymlinks(t *testing.T) {
	r := artEnv(t)
	r.timeout = 3 * time.Minute
	dir := quietDir(t)
	os.Chown(dir, nobody, nobody)
	asNobody(t, fmt.Sprintf(`cd %s && mkdir a && : > a/f && ln -s . a/loop`, dir))
	got := r.hunt(t, "Custom.Velohunt.File", map[string]string{
		"IOCs": jsonList("f"), "TargetGlobs": jsonList(dir + "/**")})
	t.Logf("state %s %s rows: %d %v\ncoverage:\n%s", got.flow.State, got.flow.Status, len(got.rows), hits(got.rows), covProblems(got.coverage))
	if len(got.rows) != 1 {
		t.Errorf("%d rows for one file, want 1 (a link followed, or the file missed)", len(got.rows))
	}
}

// Folders that link to each other: the by-name walk visits every order of
// them (a chain stops only when it meets a folder it already went
// through), so n tiny folders cost about n! directory entries.
func TestRealFileByNameSymlinkMesh(t *testing.T) {
	r := artEnv(t)
	r.timeout = 5 * time.Minute
	n := 6
	if s := os.Getenv("VELOHUNT_TEST_MESH"); s != "" {
		fmt.Sscan(s, &n)
	}
	dir := quietDir(t)
	os.Chown(dir, nobody, nobody)
	asNobody(t, fmt.Sprintf(`cd %s && for i in $(seq 1 %d); do mkdir d$i; done && for i in $(seq 1 %d); do for j in $(seq 1 %d); do [ $i = $j ] || ln -s ../d$j d$i/l$j; done; done`, dir, n, n, n))
	got := r.hunt(t, "Custom.Velohunt.File", map[string]string{
		"IOCs": jsonList("nothing-here"), "TargetGlobs": jsonList(dir + "/**")})
	t.Logf("n=%d state %s %s cpu %v wall %v peak RSS %d MiB\ncoverage:\n%s", n, got.flow.State, got.flow.Status, got.cpu, got.wall, got.peak>>20, covProblems(got.coverage))
	if len(got.coverage) == 0 {
		t.Errorf("no coverage row: the flow did not finish")
		return
	}
	searched, _ := got.coverage[0]["Coverage"].(map[string]any)["Searched"].(float64)
	if entries := n * n; searched > float64(10*entries) {
		t.Errorf("%d directory entries planted (%d folders of links), %v walked", entries, n, searched)
	}
}

// A link a user plants under a TargetGlobs root does not take the by-name
// walk out of the globs (to /usr here; a link to / walked the whole machine,
// 1.16 million entries and 39 s of CPU, at every hunt).
func TestRealFileByNameLeavesGlobs(t *testing.T) {
	r := artEnv(t)
	r.timeout = 5 * time.Minute
	target := os.Getenv("VELOHUNT_TEST_LINK_TARGET")
	if target == "" {
		target = "/usr"
	}
	dir := quietDir(t)
	os.Chown(dir, nobody, nobody)
	asNobody(t, fmt.Sprintf(`cd %s && ln -s %s out`, dir, target))
	got := r.hunt(t, "Custom.Velohunt.File", map[string]string{
		"IOCs": jsonList("nothing-here"), "TargetGlobs": jsonList(dir + "/**")})
	t.Logf("link to %s: state %s %s cpu %v wall %v peak RSS %d MiB\ncoverage:\n%s", target, got.flow.State, got.flow.Status, got.cpu, got.wall, got.peak>>20, covProblems(got.coverage))
	if len(got.coverage) == 0 {
		t.Fatalf("no coverage row: the flow did not finish (state %s)", got.flow.State)
	}
	if s, _ := got.coverage[0]["Coverage"].(map[string]any)["Searched"].(float64); s > 1 {
		t.Errorf("one link planted, %v directory entries walked", s)
	}
}

// A connected IPv6 UDP socket to an IPv4-mapped address (::ffff:a.b.c.d),
// as any dual-stack program makes, and its IPv4 twin as the control.
func TestRealNetworkMappedIPv4(t *testing.T) {
	r := artEnv(t)
	script := `import socket,time
s6=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s6.connect(("::ffff:203.0.113.5",4444))
s4=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s4.connect(("203.0.113.6",4444))
t6=socket.socket(socket.AF_INET6,socket.SOCK_STREAM); t6.setblocking(False)
try: t6.connect(("::ffff:203.0.113.7",4444))
except BlockingIOError: pass
time.sleep(120)`
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(time.Second)
	out, _ := exec.Command("sh", "-c", "grep -i 'CB007105\\|CB007106\\|CB007107\\|0571 \\|0671 ' /proc/net/udp /proc/net/udp6 /proc/net/tcp6; true").CombinedOutput()
	t.Logf("kernel:\n%s", out)
	got := r.hunt(t, "Custom.Velohunt.Network", map[string]string{
		"IOCs": jsonList("203.0.113.5", "203.0.113.6", "203.0.113.7")})
	var found []string
	for _, row := range got.rows {
		found = append(found, fmt.Sprint(row["IOC"], " ", row["Evidence"]))
	}
	t.Logf("rows: %v\ncoverage:\n%s", found, covProblems(got.coverage))
	for _, ioc := range []string{"203.0.113.5", "203.0.113.6", "203.0.113.7"} {
		if !strings.Contains(strings.Join(found, "\n"), ioc+" ") {
			t.Errorf("live socket to %s (python, pid %d) not reported", ioc, cmd.Process.Pid)
		}
	}
}

// A file that is a regular file when the walk lstat()s it and a FIFO when
// hash() opens it: were open() to block until a writer comes, the hash hunt
// would never end and the files after it would never be searched. It
// finishes (hash() on a FIFO returns null at once on 0.77.2).
func TestRealHashFIFOSwap(t *testing.T) {
	r := realHashEnv(t)
	r.timeout = 90 * time.Second
	dir := quietDir(t)
	os.Chown(dir, nobody, nobody)
	asNobody(t, fmt.Sprintf(`cd %s && mkfifo keep && printf x > b && for i in $(seq 1 200); do printf y > f$i; done`, dir))
	loop := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
		fmt.Sprintf(`cd %s && while :; do printf x > r; mv -f r a; ln -f keep p; mv -f p a; done`, dir))
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	stopLoop := func() { loop.Process.Kill(); loop.Wait() }
	defer stopLoop()
	// The IOC is the hash of "y": the files f1..f200.
	got := r.hunt(t, "Custom.Velohunt.Hash", hashParams(dir, []string{md5hex([]byte("y"))}, map[string]string{"UseIndex": "N"}))
	stopLoop()
	// Release a client thread blocked in open(): open the FIFO for writing.
	w := exec.Command("timeout", "5", "sh", "-c", "exec 3>"+dir+"/keep")
	released := w.Run() == nil
	t.Logf("state %s %q rows %d coverage:\n%s\nreleased a blocked reader: %v", got.flow.State, got.flow.Status, len(got.rows), covProblems(got.coverage), released)
	if got.flow.State != "FINISHED" || len(got.coverage) == 0 {
		t.Errorf("the hash hunt did not finish: a FIFO swapped in after the walk's lstat blocked hash() (state %s, %d of 200 hits)", got.flow.State, len(got.rows))
	}
}

// The same depth limit with the File artifact's default TargetGlobs on the
// Windows-impersonating client (C:/Users/**).
func TestRealWindowsFileByNameDeep(t *testing.T) {
	r := artEnv(t)
	r.client = os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_CLIENT")
	root := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_WINDOWS_ROOT")
	if r.client == "" || root == "" {
		t.Skip("needs the Windows-impersonating client")
	}
	base := filepath.Join(root, "Users", "velohunt-art-deep")
	t.Cleanup(func() { os.RemoveAll(base) })
	d := filepath.Join(base, "AppData")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "evil-shallow.exe"), []byte("x"), 0o644)
	deep := base
	for i := 0; i < 31; i++ {
		deep = filepath.Join(deep, "d")
	}
	os.MkdirAll(deep, 0o755)
	os.WriteFile(filepath.Join(deep, "evil-deep.exe"), []byte("x"), 0o644)
	got := r.hunt(t, "Custom.Velohunt.File", map[string]string{"IOCs": jsonList("evil-shallow.exe", "evil-deep.exe")})
	var found []string
	for _, row := range got.rows {
		found = append(found, fmt.Sprint(row["IOC"], " ", row["OSPath"]))
	}
	t.Logf("rows %v\ncoverage:\n%s", found, covProblems(got.coverage))
	all := strings.Join(found, "\n")
	if !strings.Contains(all, "evil-shallow.exe") {
		t.Fatal("control not found")
	}
	if !strings.Contains(all, "evil-deep.exe") && !strings.Contains(covProblems(got.coverage), `"Problem":"`+"\\") {
		t.Errorf("C:/Users/velohunt-art-deep/d/.../evil-deep.exe (32 folders down) not found with the default TargetGlobs; coverage says no problem")
	}
}
