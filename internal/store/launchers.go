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
// first time.
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
		b := make([]byte, 16)
		rand.Read(b)
		id := hex.EncodeToString(b)
		f, err := os.OpenFile(filepath.Join(l.dir, id+".lock"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			os.Remove(f.Name())
			return
		}
		l.id, l.file = id, f
		// Lock files of launchers that ended and held no claim.
		entries, _ := os.ReadDir(l.dir)
		for _, e := range entries {
			if name := e.Name(); filepath.Ext(name) == ".lock" {
				db.holderGone(name[:len(name)-len(".lock")])
			}
		}
	})
	return l.id
}

// holderGone reports whether the launcher of a claim has ended: its lock
// file can be locked (it is then removed), or it is gone. It answers false
// whenever it cannot be sure.
func (db *DB) holderGone(id string) bool {
	if !holderID.MatchString(id) || db.path == "" || id == db.launch.id {
		return false
	}
	name := filepath.Join(launcherDir(db.path), id+".lock")
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false // held: the launcher lives
	}
	os.Remove(name)
	return true
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
