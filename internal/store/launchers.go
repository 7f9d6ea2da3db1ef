package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
)

// A launch claim names the launcher that holds it: a process that opened
// the database and holds an exclusive flock on a file of its own,
// <database>.launchers/<id>.lock, for as long as it lives. A claim whose
// holder's lock can be taken is a claim of a launcher that ended (killed,
// crashed, its machine rebooted), and another launcher takes the hunt over
// without waiting the lease out. The kernel drops a flock when its process
// ends, whatever pid or time namespace the process ran in and whoever can
// see it in /proc, and never while it lives.
type launchers struct {
	once sync.Once
	id   string   // "" when no lock file could be made: claims are anonymous
	file *os.File // holds the flock
	dir  string
}

var holderID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// launcherDir is the folder of the launchers' lock files.
func launcherDir(path string) string { return path + ".launchers" }

// holder returns this DB handle's launcher id, making its lock file the
// first time. The file is made and locked under a temporary name, then
// renamed: a lock file is never seen unlocked under its final name while
// its launcher lives.
func (db *DB) holder() string {
	l := &db.launch
	l.once.Do(func() {
		if db.path == "" {
			return
		}
		l.dir = launcherDir(db.path)
		if err := os.Mkdir(l.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return
		}
		if !trustedDir(l.dir) {
			return // anonymous claims: only their lease ends them
		}
		b := make([]byte, 16)
		rand.Read(b)
		id := hex.EncodeToString(b)
		tmp := filepath.Join(l.dir, ".new-"+id)
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			os.Remove(tmp)
			return
		}
		if err := os.Rename(tmp, filepath.Join(l.dir, id+".lock")); err != nil {
			f.Close()
			os.Remove(tmp)
			return
		}
		l.id, l.file = id, f
		// Lock files of launchers that ended and held no claim, and
		// temporary ones of launchers that died while starting.
		entries, _ := os.ReadDir(l.dir)
		for _, e := range entries {
			name := e.Name()
			switch {
			case filepath.Ext(name) == ".lock":
				db.holderGone(name[:len(name)-len(".lock")])
			case len(name) > 5 && name[:5] == ".new-":
				removeIfUnlocked(filepath.Join(l.dir, name))
			}
		}
	})
	return l.id
}

// trustedDir reports whether the launchers' folder is a real folder of
// this user's, closed to everyone else: anyone who could write there could
// delete a live launcher's lock file (and have its claims taken over) or
// keep a dead one's locked.
func trustedDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// removeIfUnlocked removes a file nobody holds a lock on.
func removeIfUnlocked(name string) bool {
	f, err := os.OpenFile(name, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	os.Remove(name)
	return true
}

// holderGone reports whether the launcher of a claim has ended: its lock
// file can be locked (it is then removed), or it is gone. It answers false
// whenever it cannot be sure, and always when the launchers' folder is not
// this user's alone.
func (db *DB) holderGone(id string) bool {
	if !holderID.MatchString(id) || db.path == "" || id == db.launch.id {
		return false
	}
	dir := launcherDir(db.path)
	if !trustedDir(dir) {
		return false
	}
	name := filepath.Join(dir, id+".lock")
	if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		return true
	}
	return removeIfUnlocked(name)
}

// releaseHolder ends this handle's launcher (at Close).
func (db *DB) releaseHolder() {
	l := &db.launch
	if l.file != nil {
		os.Remove(l.file.Name())
		l.file.Close()
		l.file = nil
	}
}
