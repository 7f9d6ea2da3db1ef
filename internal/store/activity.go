package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Kinds of work whose last run the store keeps.
const (
	ActivitySync  = "sync"  // a sync of IRIS's case list
	ActivityWatch = "watch" // a watcher pass
)

// Activity is when a serve last finished each kind of work (zero: never).
type Activity struct {
	LastSync  time.Time
	LastWatch time.Time
	LastWrite time.Time // an asset, event or tab written to IRIS
}

// MarkActivity records that a kind of work finished now.
func (db *DB) MarkActivity(ctx context.Context, name string) error {
	return db.exec(ctx, `INSERT INTO activity (name, at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET at = excluded.at`,
		name, db.Now().UnixMilli())
}

// Activity reads when each kind of work last finished.
func (db *DB) Activity(ctx context.Context) (Activity, error) {
	var a Activity
	rows, err := db.db.QueryContext(ctx, `SELECT name, at FROM activity`)
	if err != nil {
		return a, fmt.Errorf("activity: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var at sql.NullInt64
		if err := rows.Scan(&name, &at); err != nil {
			return a, fmt.Errorf("activity: %w", err)
		}
		switch name {
		case ActivitySync:
			a.LastSync = msToTime(at)
		case ActivityWatch:
			a.LastWatch = msToTime(at)
		}
	}
	if err := rows.Err(); err != nil {
		return a, fmt.Errorf("activity: %w", err)
	}
	var done, tab sql.NullInt64
	if err := db.db.QueryRowContext(ctx, `SELECT (SELECT MAX(done_at) FROM outbox), (SELECT MAX(written_at) FROM tabs)`).Scan(&done, &tab); err != nil {
		return a, fmt.Errorf("activity: %w", err)
	}
	a.LastWrite = msToTime(done)
	if t := msToTime(tab); t.After(a.LastWrite) {
		a.LastWrite = t
	}
	return a, nil
}
