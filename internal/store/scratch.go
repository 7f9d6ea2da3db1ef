package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
)

// A scratch store is a private copy of velohunt's state in memory. A dry
// run (`velohunt plan`) syncs IRIS into it and plans hunts in it with the
// very code serve runs, then reads what that code did: nothing it does
// reaches the database file, which it opens read-only, if at all.

// OpenMemory returns an empty, migrated store in memory: the state of a
// first start, when there is no database yet.
func OpenMemory(ctx context.Context) (*DB, error) {
	db, err := openMemory(time.Now)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func openMemory(now func() time.Time) (*DB, error) {
	sdb, err := sql.Open("sqlite3", "file::memory:?_foreign_keys=on&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open scratch store: %w", err)
	}
	// One connection, never closed while the store is open: an in-memory
	// database lives as long as its connection.
	sdb.SetMaxOpenConns(1)
	sdb.SetMaxIdleConns(1)
	sdb.SetConnMaxLifetime(0)
	sdb.SetConnMaxIdleTime(0)
	return &DB{db: sdb, Now: now}, nil
}

// Scratch returns a private copy of the database in memory, migrated to
// this velohunt's schema, which the caller may change freely. The copy is
// made with SQLite's backup API in one read of the file, so it is
// consistent while serve writes (a WAL reader does not block the writer).
// It refuses a database written by a newer velohunt.
func (db *DB) Scratch(ctx context.Context) (*DB, error) {
	mem, err := openMemory(db.Now)
	if err != nil {
		return nil, err
	}
	if err := copyDB(ctx, mem.db, db.db); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copy the database: %w", err)
	}
	if err := mem.migrate(ctx); err != nil {
		mem.Close()
		return nil, err
	}
	return mem, nil
}

// copyDB copies src's main database into dst's with the backup API,
// retrying while a writer holds src busy.
func copyDB(ctx context.Context, dst, src *sql.DB) error {
	dc, err := dst.Conn(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	sc, err := src.Conn(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	return dc.Raw(func(d any) error {
		return sc.Raw(func(s any) error {
			dconn, ok1 := d.(*sqlite3.SQLiteConn)
			sconn, ok2 := s.(*sqlite3.SQLiteConn)
			if !ok1 || !ok2 {
				return errors.New("not SQLite connections")
			}
			b, err := dconn.Backup("main", sconn, "main")
			if err != nil {
				return err
			}
			for {
				done, err := b.Step(-1)
				if err != nil {
					b.Finish()
					return err
				}
				if done {
					return b.Finish()
				}
				// Busy or locked: a writer is checkpointing. Try again.
				select {
				case <-ctx.Done():
					b.Finish()
					return ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	})
}
