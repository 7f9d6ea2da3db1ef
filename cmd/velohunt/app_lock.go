package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// One velohunt serve per database: serve holds an exclusive flock on
// <database>.lock, which names the holder (pid, listen address) so that a
// second serve, and `status`, can say who it is. The kernel drops the lock
// when the process ends, however it ends; a file left by a killed serve is
// taken over by the next.

// lockInfo is what the lock file says about the serve holding it.
type lockInfo struct {
	PID     int       `json:"pid"`
	Listen  string    `json:"listen"`
	Started time.Time `json:"started_at"`
	Version string    `json:"version"`
}

// serveLock is a held lock.
type serveLock struct {
	f    *os.File
	path string
}

func lockPath(database string) string { return database + ".lock" }

// errLocked reports a database held by another serve.
type errLocked struct {
	Database string
	Holder   lockInfo
}

func (e *errLocked) Error() string {
	who := "another velohunt serve"
	if e.Holder.PID != 0 {
		who += fmt.Sprintf(" (pid %d, listening on %s, since %s)", e.Holder.PID, e.Holder.Listen, e.Holder.Started.Format(time.RFC3339))
	}
	return fmt.Sprintf("database %s is in use by %s: one serve per database; stop that one first, or give this one another `database`",
		e.Database, who)
}

// acquireLock takes the serve lock of a database, or says who holds it.
func acquireLock(database string) (*serveLock, error) {
	path := lockPath(database)
	for range 5 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, lockFileError(database, path, err)
		}
		if err := lockExclusive(f); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				info, _ := readLockInfo(path)
				return nil, &errLocked{Database: database, Holder: info}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The serve before may have removed the file between our open and
		// our lock: the lock must be on the file that is at the path now.
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return &serveLock{f: f, path: path}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock %s: the file keeps being replaced", path)
}

// lockExclusive takes the exclusive lock without waiting for a serve, but
// through the shared lock that `status` and `plan` hold for an instant to
// see whether a serve runs (lockHolder): a holder is a lock held for half
// a second.
func lockExclusive(f *os.File) error {
	var err error
	for range 25 {
		if err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// lockFileError says which path and permission keep serve from creating
// its lock file beside the database (the directory is the database's).
func lockFileError(database, path string, err error) error {
	dir := filepath.Dir(path)
	verb := "create"
	if _, serr := os.Stat(database); serr == nil {
		verb = "lock"
	}
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("cannot %s database %s: permission denied on directory %s (serve keeps %s there): %w",
			verb, database, dir, filepath.Base(path), err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot %s database %s: directory %s does not exist: %w", verb, database, dir, err)
	}
	return fmt.Errorf("lock file: %w", err)
}

// write records who holds the lock.
func (l *serveLock) write(info lockInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	return nil
}

// release removes the lock file and drops the lock.
func (l *serveLock) release() {
	if l == nil {
		return
	}
	os.Remove(l.path)
	l.f.Close()
}

func readLockInfo(path string) (lockInfo, error) {
	var info lockInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	err = json.Unmarshal(b, &info)
	return info, err
}

// lockHolder says whether a serve holds the database's lock, and who.
func lockHolder(database string) (lockInfo, bool, error) {
	path := lockPath(database)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return lockInfo{}, false, nil
	} else if err != nil {
		return lockInfo{}, false, fmt.Errorf("lock file: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return lockInfo{}, false, nil // left by a serve that was killed
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		return lockInfo{}, false, fmt.Errorf("lock %s: %w", path, err)
	}
	info, _ := readLockInfo(path)
	return info, true, nil
}
