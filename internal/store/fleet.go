package store

import (
	"context"
	"fmt"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// FleetVersion is a client version of a fleet as last read, with how well
// velohunt hunts on it (see internal/fleet).
type FleetVersion struct {
	Version string // as the clients report it
	Clients int64
	Support string // full, partial, unchecked
	Release string // the release of velohunt's table it is ("" when unchecked)
	Missing string // what that release lacks, "; " between
	Why     string // why an unchecked version was not checked
}

// Fleet is a server's (and org's) client versions as last read.
type Fleet struct {
	Server, Org string
	// CheckedAt is the last successful read (zero: never); TriedAt the
	// last attempt, and Error its error ("" when it succeeded).
	CheckedAt, TriedAt time.Time
	Error              string
	Versions           []FleetVersion // most clients first
}

// SaveFleet replaces a fleet's versions with a successful read.
func (db *DB) SaveFleet(ctx context.Context, server, org string, versions []FleetVersion) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO fleets (server, org, checked_at, tried_at, error) VALUES (?, ?, ?, ?, '')
			ON CONFLICT (server, org) DO UPDATE SET checked_at = excluded.checked_at, tried_at = excluded.tried_at, error = ''`,
			server, org, tx.nowMS(), tx.nowMS()); err != nil {
			return fmt.Errorf("save fleet %s/%s: %w", server, org, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM fleet_versions WHERE server = ? AND org = ?`, server, org); err != nil {
			return fmt.Errorf("save fleet %s/%s: %w", server, org, err)
		}
		for i, v := range versions {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_versions (server, org, pos, version, clients, support, release, missing, why)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, server, org, i, clipText(v.Version, 100), v.Clients, v.Support, v.Release,
				clipText(v.Missing, 2000), clipText(v.Why, 1000)); err != nil {
				return fmt.Errorf("save fleet %s/%s: %w", server, org, err)
			}
		}
		return nil
	})
}

// SaveFleetError records a failed read; the last versions read stay.
func (db *DB) SaveFleetError(ctx context.Context, server, org, msg string) error {
	return db.exec(ctx, `INSERT INTO fleets (server, org, tried_at, error) VALUES (?, ?, ?, ?)
		ON CONFLICT (server, org) DO UPDATE SET tried_at = excluded.tried_at, error = excluded.error`,
		server, org, db.Now().UnixMilli(), clipText(msg, 1000))
}

// ForgetFleetsExcept deletes the fleets of servers and orgs no longer
// configured.
func (db *DB) ForgetFleetsExcept(ctx context.Context, keep []ioc.Route) error {
	list, err := db.Fleets(ctx)
	if err != nil {
		return err
	}
	return db.tx(ctx, func(tx *Tx) error {
		for _, f := range list {
			kept := false
			for _, r := range keep {
				kept = kept || r.Server == f.Server && r.Org == f.Org
			}
			if kept {
				continue
			}
			for _, q := range []string{`DELETE FROM fleet_versions WHERE server = ? AND org = ?`, `DELETE FROM fleets WHERE server = ? AND org = ?`} {
				if _, err := tx.ExecContext(ctx, q, f.Server, f.Org); err != nil {
					return fmt.Errorf("forget fleet %s/%s: %w", f.Server, f.Org, err)
				}
			}
		}
		return nil
	})
}

// Fleets returns every fleet as last read, by server and org.
func (db *DB) Fleets(ctx context.Context) ([]Fleet, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT server, org, checked_at, tried_at, error FROM fleets ORDER BY server, org`)
	if err != nil {
		return nil, fmt.Errorf("fleets: %w", err)
	}
	var out []Fleet
	for rows.Next() {
		var f Fleet
		var checked, tried int64
		if err := rows.Scan(&f.Server, &f.Org, &checked, &tried, &f.Error); err != nil {
			rows.Close()
			return nil, fmt.Errorf("fleets: %w", err)
		}
		if checked > 0 {
			f.CheckedAt = time.UnixMilli(checked).UTC()
		}
		f.TriedAt = time.UnixMilli(tried).UTC()
		out = append(out, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleets: %w", err)
	}
	for i := range out {
		f := &out[i]
		vs, err := db.db.QueryContext(ctx, `SELECT version, clients, support, release, missing, why FROM fleet_versions
			WHERE server = ? AND org = ? ORDER BY pos`, f.Server, f.Org)
		if err != nil {
			return nil, fmt.Errorf("fleets: %w", err)
		}
		for vs.Next() {
			var v FleetVersion
			if err := vs.Scan(&v.Version, &v.Clients, &v.Support, &v.Release, &v.Missing, &v.Why); err != nil {
				vs.Close()
				return nil, fmt.Errorf("fleets: %w", err)
			}
			f.Versions = append(f.Versions, v)
		}
		vs.Close()
		if err := vs.Err(); err != nil {
			return nil, fmt.Errorf("fleets: %w", err)
		}
	}
	return out, nil
}
