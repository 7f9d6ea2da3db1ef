// Package store keeps velohunt's state in SQLite: cases, IOCs, hunts and the
// IOCs each hunt covers, webhook events and the intake cursor. It owns all of
// velohunt's SQL. Every change that must survive a crash is one transaction,
// so a process killed at any moment restarts where it stopped.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/velohunt/velohunt/internal/ioc"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DB is the store.
type DB struct {
	db *sql.DB
	// Now returns the current time; tests replace it.
	Now func() time.Time
	// CollectHits marks each new hit for the collector (follow-up
	// collections are configured); without it no hit waits for one.
	CollectHits bool
	// path is the database file ("" for a scratch copy in memory).
	path   string
	launch launchers
}

// Close closes the database and ends this handle's launcher (its launch
// claims are then taken over at once).
func (db *DB) Close() error {
	db.releaseHolder()
	return db.db.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.db.PingContext(ctx) }

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	pending, err := db.pendingMigrations(ctx)
	if err != nil {
		return err
	}
	for _, name := range pending {
		if err := db.applyMigration(ctx, "migrations/"+name, name); err != nil {
			return err
		}
	}
	return nil
}

// pendingMigrations lists, in order, this velohunt's migrations the
// database has not applied.
func (db *DB) pendingMigrations(ctx context.Context) ([]string, error) {
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	names, err := migrationNames()
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, n := range names {
		if !applied[n] {
			pending = append(pending, n)
		}
	}
	return pending, nil
}

// migrationNames lists this velohunt's migrations in order.
func migrationNames() ([]string, error) {
	paths, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(paths)
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = strings.TrimPrefix(p, "migrations/")
	}
	return names, nil
}

// appliedMigrations reads the migrations applied to the database, and
// refuses one written by a newer velohunt.
func (db *DB) appliedMigrations(ctx context.Context) (map[string]bool, error) {
	names, err := migrationNames()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	rows, err := db.db.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for n := range applied {
		if !known[n] {
			return nil, fmt.Errorf("database has migration %s that this velohunt does not know: it was written by a newer version", n)
		}
	}
	return applied, nil
}

func (db *DB) applyMigration(ctx context.Context, path, name string) error {
	body, err := migrationFS.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read migration %s: %w", name, err)
	}
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, name, db.Now().UnixMilli()); err != nil {
		return fmt.Errorf("migration %s: %w", name, err)
	}
	return tx.Commit()
}

// tx runs fn in one write transaction that carries the current time.
func (db *DB) tx(ctx context.Context, fn func(tx *Tx) error) error {
	stx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return db.finish(stx, fn)
}

// finish runs fn in a begun transaction and commits it, or rolls it back.
func (db *DB) finish(stx *sql.Tx, fn func(tx *Tx) error) error {
	defer stx.Rollback()
	if err := fn(&Tx{Tx: stx, now: db.Now().UTC()}); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// durableTx is tx committed with synchronous=FULL: in WAL mode SQLite then
// syncs the log at commit, so the transaction survives a power loss, not
// only a crash of the process (the store's default, synchronous=NORMAL,
// may lose the last commits on a power loss, and costs half as much on the
// results path: BENCHMARKS.md). Used where velohunt promised something
// outside: a webhook answered 202, a hunt launch attempt counted before the
// Velociraptor call. The store's one connection is held for the whole
// exchange, so no other write runs in between and the setting is restored.
func (db *DB) durableTx(ctx context.Context, fn func(tx *Tx) error) error {
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return fmt.Errorf("synchronous: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`)
	stx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return db.finish(stx, fn)
}

// Tx is a transaction with a fixed "now".
type Tx struct {
	*sql.Tx
	now time.Time
}

func (tx *Tx) nowMS() int64 { return tx.now.UnixMilli() }

// mapErr turns SQLite constraint errors into ECONFLICT.
func mapErr(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey) {
		return &ioc.Error{Code: ioc.ECONFLICT, Message: "already exists"}
	}
	return err
}

func msToTime(ms sql.NullInt64) time.Time {
	if !ms.Valid || ms.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}
