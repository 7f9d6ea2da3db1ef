package velociraptor_test

// Hash hunts on a real Velociraptor client, switched on by
//
//	VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG  api_client config (investigator,artifact_writer)
//	VELOHUNT_TEST_VELOCIRAPTOR_CLIENT=1    a Velociraptor client runs on this machine
//
// The client must be able to read the test's temporary folder (it runs on
// this machine). Its process is found by its command line, to read its CPU
// time and bytes read from /proc.

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/templates"
)

type realHash struct {
	c      *velociraptor.Client
	org    string
	pid    int
	client string // the client whose flow is read; "" for the first that finishes
	// timeout is the hunt's client_timeout (30 minutes when zero); with it
	// set, a flow that times out is returned, not a failure.
	timeout time.Duration
}

// realHashEnv connects to the real server, uploads velohunt's hash
// artifact and finds the client's process.
func realHashEnv(tb testing.TB) *realHash {
	tb.Helper()
	path := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG")
	if path == "" || os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT") != "1" {
		tb.Skip("needs a real Velociraptor with a client on this machine: set VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG and VELOHUNT_TEST_VELOCIRAPTOR_CLIENT=1")
	}
	c := dialReal(tb, path, 10*time.Minute)
	r := &realHash{c: c, org: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_ORG"), pid: clientPID(tb),
		client: os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_LINUX_CLIENT")}

	defs, err := templates.Artifacts("")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.SetArtifact(context.Background(), r.org, defs["Custom.Velohunt.Hash"]); err != nil {
		tb.Fatal(err)
	}
	return r
}

// clientPID finds the Velociraptor client process of this machine: the one
// started with VELOHUNT_TEST_VELOCIRAPTOR_CLIENT_CONFIG when it is set (a
// machine may run several clients), else the first.
func clientPID(tb testing.TB) int {
	tb.Helper()
	config := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT_CONFIG")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) > 1 && strings.Contains(filepath.Base(args[0]), "velociraptor") && slices.Contains(args, "client") &&
			(config == "" || slices.Contains(args, config)) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	tb.Skip("no Velociraptor client process on this machine")
	return 0
}

// usage is a process's CPU time and bytes read through system calls (page
// cache included), from /proc.
type usage struct {
	cpu  time.Duration
	read int64
}

func readUsage(tb testing.TB, pid int) usage {
	tb.Helper()
	u, err := procUsage(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func procUsage(pid int) (usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, err
	}
	// Fields after the command (which may hold spaces): utime and stime
	// are the 12th and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u := usage{cpu: time.Duration(ut+st) * 10 * time.Millisecond}
	io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return usage{}, err
	}
	for _, line := range strings.Split(string(io), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			u.read, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return u, nil
}

// resetPeak resets the peak resident memory the kernel keeps for a process
// (VmHWM), so that peakRSS reads the peak of what follows.
func resetPeak(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// peakRSS reads a process's peak resident memory (VmHWM), in bytes.
func peakRSS(pid int) int64 { return procStatus(pid, "VmHWM:") }

// procStatus reads a memory figure of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// labelClient gives a client a label, with the Velociraptor binary
// (VELOHUNT_TEST_VELOCIRAPTOR_BINARY) through the tests' API config.
func labelClient(tb testing.TB, client, label string) {
	tb.Helper()
	bin := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY")
	if bin == "" {
		tb.Skip("needs VELOHUNT_TEST_VELOCIRAPTOR_BINARY to label the test client")
	}
	out, err := exec.Command(bin, "--api_config", os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), "query", "--format", "jsonl",
		"SELECT label(client_id=C, labels=[L], op='set') AS Done FROM scope()", "--env", "C="+client, "--env", "L="+label).CombinedOutput()
	if err != nil || !strings.Contains(string(out), label) {
		tb.Fatalf("label %s on %s: %v\n%s", label, client, err, out)
	}
}

// flowLog returns the log of a flow, read with the Velociraptor binary
// (VELOHUNT_TEST_VELOCIRAPTOR_BINARY) through the same API config.
func flowLog(tb testing.TB, f velociraptor.Flow) string {
	tb.Helper()
	bin := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_BINARY")
	if bin == "" {
		tb.Skip("needs VELOHUNT_TEST_VELOCIRAPTOR_BINARY to read flow logs")
	}
	out, err := exec.Command(bin, "--api_config", os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), "query", "--format", "jsonl",
		"SELECT message FROM flow_logs(client_id=ClientId, flow_id=FlowId)", "--env", "ClientId="+f.ClientID, "--env", "FlowId="+f.FlowID).CombinedOutput()
	if err != nil {
		tb.Fatalf("flow log of %s/%s: %v\n%s", f.ClientID, f.FlowID, err, out)
	}
	return string(out)
}

// run is one collection's cost on the client and its rows.
type run struct {
	wall time.Duration
	cpu  time.Duration
	read int64
	// coverage are the artifact's last rows (Source "coverage"), not in rows.
	coverage []map[string]any
	rss      int64 // the client's resident memory when the hunt started, bytes
	peak     int64 // the client's peak resident memory during the hunt, bytes
	flow     velociraptor.Flow
	rows     []map[string]any
}

// hunt runs artifact with params as a hunt, waits until the client's flow
// ends, and returns what it cost the client (CPU time, bytes read, and the
// wall time it was busy) and the rows.
func (r *realHash) hunt(tb testing.TB, artifact string, params map[string]string) run {
	tb.Helper()
	ctx := context.Background()
	resetPeak(r.pid)
	rss := procStatus(r.pid, "VmRSS:")
	before := readUsage(tb, r.pid)
	// The client picks a hunt up at its next poll: its own wall time runs
	// from the first to the last 100ms in which it used CPU.
	var busyFirst, busyLast time.Time
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		last := before.cpu
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case now := <-t.C:
				u, err := procUsage(r.pid)
				if err != nil {
					return
				}
				if u.cpu-last >= 20*time.Millisecond {
					if busyFirst.IsZero() {
						busyFirst = now.Add(-100 * time.Millisecond)
					}
					busyLast = now
				}
				last = u.cpu
			}
		}
	}()
	req := velociraptor.HuntRequest{Org: r.org, Artifact: artifact, Params: params, Expires: time.Hour,
		Description: "velohunt hash test", Tags: []string{"velohunt-test"}, ClientTimeout: cmp.Or(r.timeout, 30*time.Minute)}
	if r.client != "" {
		// Only that client runs the tests' hunts: the other clients of the
		// machine would share their index files.
		labelClient(tb, r.client, "velohunt-test-"+r.client)
		req.IncludeLabels = []string{"velohunt-test-" + r.client}
	}
	id, err := r.c.CreateHunt(ctx, req)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.c.StartHunt(ctx, r.org, id); err != nil {
		tb.Fatal(err)
	}
	defer r.c.StopHunt(ctx, r.org, id)
	var flow velociraptor.Flow
	for deadline := time.Now().Add(30 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		flows, err := r.c.HuntFlows(ctx, r.org, id)
		if err != nil {
			tb.Fatal(err)
		}
		if i := slices.IndexFunc(flows, func(f velociraptor.Flow) bool { return r.client == "" || f.ClientID == r.client }); i >= 0 && flows[i].Done() {
			flow = flows[i]
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("hunt %s: no finished flow after 30 minutes: %+v", id, flows)
		}
	}
	close(stopSampling)
	<-sampled
	out := run{wall: busyLast.Sub(busyFirst), rss: rss, peak: peakRSS(r.pid), flow: flow}
	if busyFirst.IsZero() {
		out.wall = 0
	}
	after := readUsage(tb, r.pid)
	out.cpu, out.read = after.cpu-before.cpu, after.read-before.read
	if flow.State == "ERROR" && r.timeout == 0 {
		tb.Fatalf("hunt %s failed on the client: %s", id, flow.Status)
	}
	source := artifact
	err = r.c.FlowResults(ctx, r.org, flow.ClientID, flow.FlowID, source, 0, func(raw json.RawMessage) error {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if m["Source"] == "coverage" {
			out.coverage = append(out.coverage, m)
		} else {
			out.rows = append(out.rows, m)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// hits returns the IOC and path of each row, sorted.
func hits(rows []map[string]any) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%v %v %v %v %v", r["IOC"], r["OSPath"], r["MD5"], r["SHA1"], r["SHA256"]))
	}
	slices.Sort(out)
	return out
}

// TestRealClientHashIndex hunts a folder three times on the real client,
// with the index and without: the results are the same, a file changed
// between hunts is found with its new hash and not its old one, and the
// second hunt hashes only the changed file.
func TestRealClientHashIndex(t *testing.T) {
	r := realHashEnv(t)
	dir := quietDir(t)
	write := func(name, content string) (string, string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		m, s := md5.Sum([]byte(content)), sha256.Sum256([]byte(content))
		return hex.EncodeToString(m[:]), hex.EncodeToString(s[:])
	}
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("tree/d%d/f%d.txt", i%10, i))
		write(names[i], fmt.Sprintf("file %d", i))
	}
	oldMD5, _ := write("tree/changing.bin", "before")
	otherMD5, otherSHA := write("tree/d1/target.exe", "evil")
	// A symbolic link to a file with a wanted hash: not followed.
	os.Symlink(filepath.Join(dir, "tree/d1/target.exe"), filepath.Join(dir, "tree/link.exe"))
	// A running process whose image has a wanted hash, outside the tree.
	exe := filepath.Join(dir, "vh-sleep")
	img, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Skip("no /bin/sleep to run")
	}
	// A unique image: trailing bytes do not stop an ELF from running.
	img = append(img, []byte(dir)...)
	os.WriteFile(exe, img, 0o755)
	proc := exec.Command(exe, "300")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Process.Kill()
	procSum := md5.Sum(img)
	procMD5 := hex.EncodeToString(procSum[:])
	// The index in a directory of its own, closed to other accounts.
	index := filepath.Join(privateDir(t), "index.sqlite")
	glob, _ := json.Marshal([]string{filepath.ToSlash(dir) + "/tree/**"})
	params := func(iocs []string, useIndex string) map[string]string {
		l, _ := json.Marshal(iocs)
		// The files were just written: no wait for them to settle.
		return map[string]string{"IOCs": string(l), "TargetGlobs": string(glob), "UseIndex": useIndex, "IndexFile": index, "IndexSettle": "0"}
	}
	hashedSince := func(t0 time.Time) int {
		db, err := sql.Open("sqlite3", "file:"+index+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM velohunt_index WHERE seen_at >= ? AND path LIKE ?`, t0.Unix(), dir+"/tree/%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	nextSecond()
	t0 := time.Now().Truncate(time.Second)
	first := r.hunt(t, "Custom.Velohunt.Hash", params([]string{oldMD5, otherMD5, procMD5}, "Y"))
	if got := hits(first.rows); len(got) != 3 || !strings.Contains(strings.Join(got, "\n"), exe) {
		t.Fatalf("first hunt: %q, want the two files (not the link) and the process image", got)
	}
	if n := hashedSince(t0); n != 202 {
		t.Fatalf("first hunt indexed %d files, want 202", n)
	}
	for _, row := range first.rows {
		if row["SHA256"] != "" || row["SHA1"] != "" {
			t.Fatalf("an MD5-only hunt returned %v", row)
		}
	}

	// The file changes (same size, so only its times tell); a new hunt for
	// its old and new hashes, with and without the index.
	time.Sleep(1100 * time.Millisecond)
	newMD5, _ := write("tree/changing.bin", "after!")
	// A file changed in the second a hunt starts is read but not saved
	// (IndexSettle 0 still wants it changed before the hunt).
	nextSecond()
	t1 := time.Now().Truncate(time.Second)
	iocs := []string{oldMD5, newMD5, otherSHA}
	with := r.hunt(t, "Custom.Velohunt.Hash", params(iocs, "Y"))
	// Only the changed file and the files that need a SHA256 now are hashed.
	if n := hashedSince(t1); n != 202 {
		t.Fatalf("second hunt hashed %d files, want 202 (SHA256 is new to the index)", n)
	}
	t2 := time.Now().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	again := r.hunt(t, "Custom.Velohunt.Hash", params(iocs, "Y"))
	if n := hashedSince(t2.Add(time.Second)); n != 0 {
		t.Fatalf("a third hunt of the same kinds hashed %d files, want 0", n)
	}
	without := r.hunt(t, "Custom.Velohunt.Hash", params(iocs, "N"))
	want := hits(without.rows)
	if len(want) != 2 || !strings.Contains(strings.Join(want, "\n"), newMD5) || strings.Contains(strings.Join(want, "\n"), oldMD5+" ") {
		t.Fatalf("without the index: %q, want the changed file by its new MD5 and target.exe by its SHA256", want)
	}
	if got := hits(with.rows); !slices.Equal(got, want) {
		t.Fatalf("with the index: %q\nwithout: %q", got, want)
	}
	if got := hits(again.rows); !slices.Equal(got, want) {
		t.Fatalf("from the index alone: %q\nwithout: %q", got, want)
	}
	t.Logf("first %v, second %v, third (index only) %v / %d bytes read, without index %v / %d bytes read",
		first.wall, with.wall, again.wall, again.read, without.wall, without.read)
}

// BenchmarkRealClientHash measures hash hunts on the real client over a
// tree of real files (VELOHUNT_BENCH_TREE, a glob; default /usr/share and
// /usr/include, about 54,000 files): Generic.Detection.HashHunter (the
// peer anchor: MD5 only, symlinks not followed), velohunt's hash artifact
// without its index, its first hunt with an empty index, a second hunt of
// other MD5s, a hunt of SHA256s (a kind the index does not hold yet), the
// second hunt again with the index filled up to 1,000,000 entries, and a
// file-name hunt over the same tree. For each: the client's wall time, CPU
// time, bytes read (rchar: page cache included), peak resident memory and
// files hashed.
//
//	go test -run XXX -bench RealClientHash -benchtime 1x -timeout 60m ./internal/velociraptor
func BenchmarkRealClientHash(b *testing.B) {
	r := realHashEnv(b)
	tree := os.Getenv("VELOHUNT_BENCH_TREE")
	if tree == "" {
		tree = "/usr/{share,include}/**"
	}
	defs, _ := templates.Artifacts("")
	if _, err := r.c.SetArtifact(context.Background(), r.org, defs["Custom.Velohunt.File"]); err != nil {
		b.Fatal(err)
	}
	index := filepath.Join(privateDir(b), "bench-index.sqlite")
	glob, _ := json.Marshal([]string{tree})
	randomMD5s := func(seed string) string {
		var l []string
		for i := range 20 {
			h := md5.Sum([]byte(fmt.Sprint(seed, i)))
			l = append(l, hex.EncodeToString(h[:]))
		}
		j, _ := json.Marshal(l)
		return string(j)
	}
	openIndex := func() *sql.DB {
		db, err := sql.Open("sqlite3", "file:"+index+"?_busy_timeout=60000")
		if err != nil {
			b.Fatal(err)
		}
		return db
	}
	indexed := func(since time.Time) int {
		db := openIndex()
		defer db.Close()
		var n int
		if db.QueryRow(`SELECT COUNT(*) FROM velohunt_index WHERE seen_at >= ?`, since.Unix()).Scan(&n) != nil {
			return -1
		}
		return n
	}
	// fill adds entries for files that do not exist, seen long ago, until
	// the index holds n entries.
	fill := func(n int) {
		db := openIndex()
		defer db.Close()
		_, err := db.Exec(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ? - (SELECT COUNT(*) FROM velohunt_index))
			INSERT INTO velohunt_index SELECT '/nonexistent/velohunt-bench/' || (i / 1000) || '/' || i || '.bin', i || ':1:1:0,0',
			lower(hex(randomblob(16))), '', '', 0, unixepoch() - 864000 FROM s`, n)
		if err != nil {
			b.Fatal(err)
		}
	}
	type step struct {
		name     string
		artifact string
		params   map[string]string
		counted  bool   // files hashed are read from the index
		before   func() // runs before the hunt
	}
	steps := []step{
		{"HashHunter", "Generic.Detection.HashHunter", map[string]string{"TargetGlob": tree, "MD5List": "ffffffffffffffffffffffffffffffff"}, false, nil},
		{"velohunt-no-index", "Custom.Velohunt.Hash", map[string]string{"IOCs": randomMD5s("a"), "TargetGlobs": string(glob), "UseIndex": "N"}, false, nil},
		{"velohunt-first", "Custom.Velohunt.Hash", map[string]string{"IOCs": randomMD5s("b"), "TargetGlobs": string(glob), "IndexFile": index}, true, nil},
		{"velohunt-second", "Custom.Velohunt.Hash", map[string]string{"IOCs": randomMD5s("c"), "TargetGlobs": string(glob), "IndexFile": index}, true, nil},
		{"velohunt-sha256", "Custom.Velohunt.Hash", map[string]string{"IOCs": `["` + strings.Repeat("ab", 32) + `"]`, "TargetGlobs": string(glob), "IndexFile": index}, true, nil},
		{"velohunt-1M-index", "Custom.Velohunt.Hash", map[string]string{"IOCs": randomMD5s("d"), "TargetGlobs": string(glob), "IndexFile": index}, true, func() { fill(1_000_000) }},
		// The same hunt without the index, right after: the client's heap
		// is in the same state, so the peaks compare.
		{"velohunt-no-index2", "Custom.Velohunt.Hash", map[string]string{"IOCs": randomMD5s("d"), "TargetGlobs": string(glob), "UseIndex": "N"}, false, nil},
	}
	b.ResetTimer()
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		time.Sleep(2 * time.Second) // the client settles
		start := time.Now().Truncate(time.Second)
		res := r.hunt(b, s.artifact, s.params)
		hashed := "all"
		if s.counted {
			hashed = strconv.Itoa(indexed(start))
		}
		b.Logf("%-18s wall %6.1fs  cpu %6.1fs  read %8.1f MiB  RSS at start %6.1f MiB, peak %6.1f MiB  files hashed %s  rows %d", s.name, res.wall.Seconds(), res.cpu.Seconds(),
			float64(res.read)/(1<<20), float64(res.rss)/(1<<20), float64(res.peak)/(1<<20), hashed, len(res.rows))
	}
	files := r.hunt(b, "Custom.Velohunt.File", map[string]string{"IOCs": `["velohunt-no-such-file.bin"]`, "TargetGlobs": string(glob)})
	b.Logf("%-18s wall %6.1fs  cpu %6.1fs  read %8.1f MiB  RSS at start %6.1f MiB, peak %6.1f MiB  files hashed 0  rows %d", "file-name hunt", files.wall.Seconds(), files.cpu.Seconds(),
		float64(files.read)/(1<<20), float64(files.rss)/(1<<20), float64(files.peak)/(1<<20), len(files.rows))
}
