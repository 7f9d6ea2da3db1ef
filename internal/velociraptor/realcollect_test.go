package velociraptor_test

// An unprivileged user's attacks on Custom.Velohunt.Collect on the real
// Linux client (variables of contract_collect_test.go). The user (uid
// 65534) owns the folder of the file velohunt collects and knows it will.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/templates"
)

// realLinuxCollect connects to the real server, uploads the artifact and
// returns the Linux client's id and a folder the user nobody owns.
func realLinuxCollect(t *testing.T) (*velociraptor.Client, string, collectHost, string) {
	path, id := os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG"), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_LINUX_CLIENT")
	if path == "" || id == "" || os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_CLIENT") != "1" {
		t.Skip("needs the real Linux client: VELOHUNT_TEST_VELOCIRAPTOR_API_CONFIG, _CLIENT=1 and _LINUX_CLIENT")
	}
	c, org := dialReal(t, path, time.Minute), os.Getenv("VELOHUNT_TEST_VELOCIRAPTOR_ORG")
	defs, err := templates.Artifacts("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetArtifact(context.Background(), org, defs[velociraptor.CollectArtifact]); err != nil {
		t.Fatal(err)
	}
	dir := quietDir(t)
	os.Chown(dir, nobody, nobody)
	return c, org, collectHost{name: "linux", client: id}, dir
}

// A folder on the path that the user replaced with a link (here, to a
// folder of theirs; it could be /etc): refused, nothing uploaded.
func TestRealCollectLinkedFolder(t *testing.T) {
	c, org, h, dir := realLinuxCollect(t)
	asNobody(t, fmt.Sprintf(`cd %s && mkdir real && printf secret > real/evil.bin && ln -s real folder`, dir))
	_, st, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: filepath.Join(dir, "folder", "evil.bin")})
	if got.Uploaded || !strings.Contains(got.Error, "folder on the path is a symbolic link") || st.UploadedBytes != 0 {
		t.Fatalf("row %+v status %+v, want the path refused", got, st)
	}
	// Control: the same file by its real path is uploaded.
	if _, _, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: filepath.Join(dir, "real", "evil.bin")}); !got.Uploaded {
		t.Fatalf("control: %+v", got)
	}
}

// The user swaps the collected path between the file and a link to a file
// they may not read (/etc/hostname stands for /etc/shadow), as fast as
// they can, while velohunt collects it again and again. Whatever the
// timing, a row that says Uploaded carries the file's own hash; a swap
// seen by a check is refused or reported.
func TestRealCollectSwapRace(t *testing.T) {
	c, org, h, dir := realLinuxCollect(t)
	content := []byte("the file velohunt wants " + dir)
	sum := sha256.Sum256(content)
	want := hex.EncodeToString(sum[:])
	asNobody(t, fmt.Sprintf(`cd %s && printf '%%s' '%s' > orig && ln orig a`, dir, content))
	loop := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c",
		fmt.Sprintf(`cd %s && while :; do ln -sf /etc/hostname t1 && mv -Tf t1 a; ln -f orig t2 && mv -Tf t2 a; done`, dir))
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { loop.Process.Kill(); loop.Wait() }()
	outcomes := map[string]int{}
	for i := 0; i < 12; i++ {
		_, _, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: filepath.Join(dir, "a")})
		switch {
		case got.Uploaded && got.SHA256 != want:
			t.Errorf("uploaded %+v: not the file's hash %s (the link's target reached the server as the file)", got, want)
		case got.Uploaded:
			outcomes["uploaded, right hash"]++
		case strings.Contains(got.Error, "changed while it was uploaded"):
			outcomes["change seen after the upload"]++
		case strings.Contains(got.Error, "symbolic link"):
			outcomes["link refused"]++
		default:
			outcomes[got.Error]++
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// TestRealCollectHardLinkRefused: a file of another user (root's 0600
// file) hard-linked into a folder of the user's, as anyone may where
// fs.protected_hardlinks is 0 (made here by root, which that setting does
// not stop), is refused: the hunt's inode is root's file (adversarial
// review). A hard link of the user's own file is collected.
func TestRealCollectHardLinkRefused(t *testing.T) {
	c, org, h, dir := realLinuxCollect(t)
	rootDir, err := os.MkdirTemp("/srv/velohunt-test", "hardlink-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rootDir) })
	secret := filepath.Join(rootDir, "secret")
	if err := os.WriteFile(secret, []byte("root:$6$secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	asNobody(t, fmt.Sprintf(`cd %s && mkdir mine && printf own > mine/own.bin && ln mine/own.bin mine/own-link.bin`, dir))
	if err := os.Link(secret, filepath.Join(dir, "mine", "evil.bin")); err != nil {
		t.Fatal(err)
	}
	_, _, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: filepath.Join(dir, "mine", "evil.bin"), MaxBytes: 1 << 20})
	if got.Uploaded || !strings.Contains(got.Error, "hard link to another user's file") {
		t.Fatalf("root's file hard-linked into a user's folder: row %+v, want it refused", got)
	}
	_, _, got = collect(t, c, org, h, velociraptor.CollectRequest{Path: filepath.Join(dir, "mine", "own-link.bin"), MaxBytes: 1 << 20})
	if !got.Uploaded {
		t.Fatalf("the user's own hard-linked file: row %+v, want it collected", got)
	}
}
