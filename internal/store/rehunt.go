package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// RehuntRun is one run of a re-hunt rule.
type RehuntRun struct {
	ID       int64
	Rule     string
	DueAt    time.Time
	Finished time.Time // zero while pending
	Queued   int
	Skipped  int
}

// MarkRehuntDue records a pending run of a rule, unless one is pending
// (runs never overlap). It reports whether a run was added.
func (db *DB) MarkRehuntDue(ctx context.Context, rule string) (bool, error) {
	var added bool
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO rehunt_runs (rule, due_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, rule, tx.nowMS())
		if err != nil {
			return fmt.Errorf("mark rehunt due: %w", err)
		}
		n, _ := res.RowsAffected()
		added = n == 1
		return nil
	})
	return added, err
}

// PendingRehuntRuns returns runs not finished yet, oldest first.
func (db *DB) PendingRehuntRuns(ctx context.Context) ([]RehuntRun, error) {
	return db.queryRuns(ctx, `WHERE finished_at IS NULL ORDER BY id`)
}

// LastRehuntRun returns the newest run of a rule, or ENOTFOUND.
func (db *DB) LastRehuntRun(ctx context.Context, rule string) (RehuntRun, error) {
	runs, err := db.queryRuns(ctx, `WHERE rule = ? ORDER BY id DESC LIMIT 1`, rule)
	if err != nil {
		return RehuntRun{}, err
	}
	if len(runs) == 0 {
		return RehuntRun{}, ioc.Errorf(ioc.ENOTFOUND, "rule %s never ran", rule)
	}
	return runs[0], nil
}

func (db *DB) queryRuns(ctx context.Context, where string, args ...any) ([]RehuntRun, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT id, rule, due_at, finished_at, queued, skipped FROM rehunt_runs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("rehunt runs: %w", err)
	}
	defer rows.Close()
	var out []RehuntRun
	for rows.Next() {
		var r RehuntRun
		var due int64
		var fin sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Rule, &due, &fin, &r.Queued, &r.Skipped); err != nil {
			return nil, err
		}
		r.DueAt, r.Finished = time.UnixMilli(due).UTC(), msToTime(fin)
		out = append(out, r)
	}
	return out, rows.Err()
}

// RehuntCandidate is an IOC a re-hunt rule may select, with its case.
type RehuntCandidate struct {
	IOC   IOC
	TLPID int64
	Case  Case
}

// RehuntCandidates returns the hunted or hunting IOCs of open cases: the
// ones a rule may queue again (queued, refused and removed ones never).
func (db *DB) RehuntCandidates(ctx context.Context) ([]RehuntCandidate, error) {
	rows, err := db.db.QueryContext(ctx, `
		SELECT i.id, i.case_id, i.iris_id, i.type_name, i.value, i.kind, i.hunt_value, i.state, i.reason, i.source,
			i.last_hunt_at, i.tlp_id, c.name, c.customer, c.tags, c.state_name, c.server, c.org
		FROM iocs i JOIN cases c ON c.case_id = i.case_id
		WHERE c.is_open = 1 AND i.state IN ('hunted','hunting') ORDER BY i.id`)
	if err != nil {
		return nil, fmt.Errorf("rehunt candidates: %w", err)
	}
	defer rows.Close()
	var out []RehuntCandidate
	for rows.Next() {
		var x RehuntCandidate
		var kind, tags string
		var last sql.NullInt64
		if err := rows.Scan(&x.IOC.ID, &x.IOC.CaseID, &x.IOC.IRISID, &x.IOC.TypeName, &x.IOC.Value, &kind, &x.IOC.HuntValue,
			&x.IOC.State, &x.IOC.Reason, &x.IOC.Source, &last, &x.TLPID, &x.Case.Name, &x.Case.Customer, &tags,
			&x.Case.State, &x.Case.Route.Server, &x.Case.Route.Org); err != nil {
			return nil, err
		}
		x.IOC.Kind, x.IOC.LastHuntAt = ioc.Kind(kind), msToTime(last)
		x.Case.ID, x.Case.Open = x.IOC.CaseID, true
		if tags != "" {
			x.Case.Tags = strings.Split(tags, ",")
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// FinishRehuntRun queues the selected IOC rows for the planner and closes
// the run, in one transaction. Rows whose state changed meanwhile (queued
// by someone else, removed) are not touched.
func (db *DB) FinishRehuntRun(ctx context.Context, runID int64, rule string, ids []int64, overlap bool, skipped int) (int, error) {
	var queued int
	err := db.tx(ctx, func(tx *Tx) error {
		queued = 0
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `UPDATE iocs SET state = 'queued', queued_at = ?, source = ?, updated_at = ?
				WHERE id = ? AND (state = 'hunted' OR (? AND state = 'hunting'))`, tx.nowMS(), "rehunt:"+rule, tx.nowMS(), id, overlap)
			if err != nil {
				return fmt.Errorf("rehunt: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				queued++
				if err := tx.logIOC(ctx, id, LogRequeued, "rehunt:"+rule, ""); err != nil {
					return err
				}
				if err := tx.enqueueTab(ctx, id); err != nil {
					return err
				}
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE rehunt_runs SET finished_at = ?, queued = ?, skipped = ? WHERE id = ?`,
			tx.nowMS(), queued, skipped+len(ids)-queued, runID)
		return err
	})
	return queued, err
}

// SetServerHold records why a server's limits hold queued work back; an
// empty reason clears it.
func (db *DB) SetServerHold(ctx context.Context, server, reason string) error {
	if reason == "" {
		return db.exec(ctx, `DELETE FROM server_holds WHERE server = ?`, server)
	}
	return db.exec(ctx, `INSERT INTO server_holds (server, reason, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (server) DO UPDATE SET reason = excluded.reason, updated_at = excluded.updated_at`, server, reason, db.Now().UnixMilli())
}

// ServerHolds returns the current holds by server.
func (db *DB) ServerHolds(ctx context.Context) (map[string]string, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT server, reason FROM server_holds ORDER BY server`)
	if err != nil {
		return nil, fmt.Errorf("server holds: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var s, r string
		if err := rows.Scan(&s, &r); err != nil {
			return nil, err
		}
		out[s] = r
	}
	return out, rows.Err()
}

// ActiveHunts counts a server's hunts that load its clients: planned or
// created ones, and running ones whose scheduled clients have not all
// finished (or that started within the last ten minutes).
func (db *DB) ActiveHunts(ctx context.Context, server string) (int, error) {
	var n int
	now := db.Now().UnixMilli()
	err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hunts WHERE server = ? AND (state IN ('planned','created')
		OR (state = 'running' AND (finished < scheduled OR started_at > ?)))`, server, now-10*60*1000).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("active hunts: %w", err)
	}
	return n, nil
}

// HuntsPlannedSince counts a server's hunts planned since t.
func (db *DB) HuntsPlannedSince(ctx context.Context, server string, t time.Time) (int, error) {
	var n int
	err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hunts WHERE server = ? AND created_at >= ?`, server, t.UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("hunts since: %w", err)
	}
	return n, nil
}
