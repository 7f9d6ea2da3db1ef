package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Options say how OpenWith treats the database file.
type Options struct {
	// MustExist refuses a missing file instead of creating it: only serve
	// creates the database, so that a mistyped path is an error elsewhere.
	MustExist bool
	// ReadOnly opens the file read-only and applies no migration (status).
	// It implies MustExist.
	ReadOnly bool
	// AnySchema skips a read-only open's check that every migration is
	// applied (backup copies whatever the file holds).
	AnySchema bool
	// QuickCheck runs SQLite's quick_check and refuses a damaged database.
	QuickCheck bool
	// Logger receives warnings (a database other users can read).
	Logger *slog.Logger
}

// RestoreHint says how to recover from a damaged or lost database.
const RestoreHint = "stop velohunt, move the file aside (with its -wal and -shm files) and copy the last `velohunt backup` file in its place; " +
	"or start from an empty database: the reconcile learns the IOCs of every open case again, and hunts already in Velociraptor are not read back"

// Open opens (creating if needed) the database file at path, enables WAL and
// foreign keys and applies pending migrations. It refuses a database written
// by a newer velohunt.
func Open(ctx context.Context, path string) (*DB, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith opens the database at path as opts say. A file it creates, and
// SQLite's -wal and -shm beside it, are readable by their owner only: they
// hold IOCs and case data.
func OpenWith(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("open store: empty path")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	created, err := prepareFile(path, opts.MustExist || opts.ReadOnly, log)
	if err != nil {
		return nil, err
	}
	db, err := open(ctx, path, opts)
	if err != nil {
		if created {
			os.Remove(path) // leave nothing behind
		}
		return nil, err
	}
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(side); err == nil && fi.Mode().Perm()&0o077 != 0 && !opts.ReadOnly {
			if err := os.Chmod(side, 0o600); err != nil {
				log.Warn("cannot make the database's side file private", "path", side, "error", err)
			}
		}
	}
	return db, nil
}

// prepareFile creates the database file with mode 0600 unless it exists (or
// must exist), and says which path and permission stand in the way.
func prepareFile(path string, mustExist bool, log *slog.Logger) (created bool, err error) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if fi.IsDir() {
			return false, fmt.Errorf("database %s is a directory", path)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			log.Warn("the database is readable by other users; it holds IOCs and case data: chmod 600 it and its -wal and -shm files",
				"path", path, "mode", fmt.Sprintf("%04o", perm))
		}
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		return false, &pathError{fmt.Sprintf("cannot open database %s: permission denied on directory %s", path, dir), err}
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("open database %s: %w", path, err)
	case mustExist:
		return false, &pathError{fmt.Sprintf("database %s does not exist: check `database` in the configuration (only `velohunt serve` creates it)", path), err}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		return true, f.Close()
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return false, &pathError{fmt.Sprintf("cannot create database %s: permission denied on directory %s", path, dir), err}
	case errors.Is(err, fs.ErrNotExist):
		return false, &pathError{fmt.Sprintf("cannot create database %s: directory %s does not exist", path, dir), err}
	}
	return false, fmt.Errorf("create database %s: %w", path, err)
}

// pathError is an error with a message that names the path and the cause.
type pathError struct {
	msg string
	err error
}

func (e *pathError) Error() string { return e.msg }
func (e *pathError) Unwrap() error { return e.err }

func open(ctx context.Context, path string, opts Options) (*DB, error) {
	// _txlock=immediate makes every transaction take the write lock at BEGIN,
	// so none has to upgrade half-way and fail with SQLITE_BUSY.
	dsn := "file:" + url.PathEscape(path) + "?_foreign_keys=on&_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate"
	if opts.ReadOnly {
		dsn = "file:" + url.PathEscape(path) + "?mode=ro&_foreign_keys=on&_busy_timeout=10000"
	}
	sdb, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// One connection: SQLite has one writer anyway, and a single connection
	// means no SQLITE_BUSY between our own goroutines.
	sdb.SetMaxOpenConns(1)
	db := &DB{db: sdb, Now: time.Now, path: path}
	fail := func(err error) (*DB, error) {
		sdb.Close()
		return nil, describeOpenError(path, err)
	}
	var mode string
	if err := sdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fail(err)
	}
	if mode != "wal" && !opts.ReadOnly {
		return fail(fmt.Errorf("journal_mode is %q, want wal", mode))
	}
	if opts.QuickCheck {
		if err := db.QuickCheck(ctx); err != nil {
			return fail(err)
		}
	}
	if opts.ReadOnly {
		if opts.AnySchema {
			return db, nil
		}
		if err := db.checkSchema(ctx); err != nil {
			return fail(err)
		}
		return db, nil
	}
	if err := db.migrate(ctx); err != nil {
		return fail(err)
	}
	return db, nil
}

// QuickCheck runs SQLite's quick_check: an error names the damage and how to
// restore the database.
func (db *DB) QuickCheck(ctx context.Context) error {
	rows, err := db.db.QueryContext(ctx, `PRAGMA quick_check`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" && len(problems) < 3 {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return &DamagedError{Detail: strings.Join(problems, "; ")}
	}
	return nil
}

// DamagedError reports a database that SQLite finds damaged.
type DamagedError struct {
	Detail string
	Err    error // SQLite's error, when it raised one
}

func (e *DamagedError) Error() string {
	return "the database is damaged (" + e.Detail + "): " + RestoreHint
}

func (e *DamagedError) Unwrap() error { return e.Err }

// describeOpenError names the file, and for a damaged file how to restore
// it, and for a file SQLite cannot open the permission that is missing.
func describeOpenError(path string, err error) error {
	var de *DamagedError
	var se sqlite3.Error
	switch {
	case errors.As(err, &de):
	case errors.As(err, &se) && (se.Code == sqlite3.ErrCorrupt || se.Code == sqlite3.ErrNotADB):
		err = &DamagedError{Detail: se.Error(), Err: err}
	case errors.As(err, &se) && (se.Code == sqlite3.ErrCantOpen || se.Code == sqlite3.ErrReadonly || se.Code == sqlite3.ErrPerm):
		dir := filepath.Dir(path)
		switch {
		case syscall.Access(path, 6) != nil: // R_OK|W_OK
			return &pathError{fmt.Sprintf("cannot open database %s: velohunt's user cannot read and write the file", path), err}
		case syscall.Access(dir, 3) != nil: // W_OK|X_OK
			return &pathError{fmt.Sprintf("cannot open database %s: permission denied on directory %s (SQLite creates the -wal and -shm files beside the database)", path, dir), err}
		}
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// checkSchema refuses a database whose migrations differ from this
// velohunt's: a read-only open cannot apply them.
func (db *DB) checkSchema(ctx context.Context) error {
	pending, err := db.pendingMigrations(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database was written by an older velohunt (migration %s is not applied yet): start `velohunt serve` once to upgrade it", pending[0])
	}
	return nil
}
