package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Case is a case as stored, with its route and intake cursor.
type Case struct {
	ioc.Case
	Route    ioc.Route
	IOCState int64 // IRIS per-case IOC counter at the last sync; -1 = never
}

// UpsertCase records a case seen open in IRIS with its current route.
func (db *DB) UpsertCase(ctx context.Context, c ioc.Case, r ioc.Route) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO cases (case_id, name, customer, tags, is_open, server, org, state_name, updated_at, scope, no_collect)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (case_id) DO UPDATE SET name = excluded.name, customer = excluded.customer,
				tags = excluded.tags, is_open = excluded.is_open, server = excluded.server,
				org = excluded.org, state_name = excluded.state_name, updated_at = excluded.updated_at,
				scope = excluded.scope, no_collect = excluded.no_collect`,
			c.ID, c.Name, c.Customer, strings.Join(c.Tags, ","), c.Open, r.Server, r.Org, c.State, tx.nowMS(), r.Scope, r.NoCollect)
		if err != nil {
			return fmt.Errorf("upsert case %d: %w", c.ID, err)
		}
		return nil
	})
}

// FindCase returns a stored case. Returns ENOTFOUND if velohunt never saw it.
func (db *DB) FindCase(ctx context.Context, id int64) (Case, error) {
	c, err := scanCase(db.db.QueryRowContext(ctx, `SELECT `+caseColumns+` FROM cases WHERE case_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Case{}, ioc.Errorf(ioc.ENOTFOUND, "case %d is unknown to velohunt", id)
	} else if err != nil {
		return Case{}, fmt.Errorf("find case %d: %w", id, err)
	}
	return c, nil
}

// CloseCasesExcept marks every open case whose id is not in open as closed,
// and drops their queued IOCs from planning. It returns the ids it closed.
func (db *DB) CloseCasesExcept(ctx context.Context, open []int64) ([]int64, error) {
	keep := map[int64]bool{}
	for _, id := range open {
		keep[id] = true
	}
	var closed []int64
	err := db.tx(ctx, func(tx *Tx) error {
		closed = closed[:0]
		rows, err := tx.QueryContext(ctx, `SELECT case_id FROM cases WHERE is_open = 1`)
		if err != nil {
			return fmt.Errorf("close cases: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("close cases: %w", err)
			}
			if !keep[id] {
				ids = append(ids, id)
			}
		}
		rows.Close()
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE cases SET is_open = 0, updated_at = ? WHERE case_id = ?`, tx.nowMS(), id); err != nil {
				return fmt.Errorf("close case %d: %w", id, err)
			}
			// Its IOCs leave the next batch and their hunts stop; the tab
			// says why.
			if _, err := tx.ExecContext(ctx, `INSERT INTO ioc_log (iris_id, ioc_id, at, event, source, detail)
				SELECT iris_id, id, ?, ?, 'case list', 'case closed' FROM iocs WHERE case_id = ? AND state != 'removed'`,
				tx.nowMS(), LogRemoved, id); err != nil {
				return fmt.Errorf("close case %d: %w", id, err)
			}
			if _, err := tx.ExecContext(ctx, `
				UPDATE iocs SET state = 'removed', reason = 'case closed', queued_at = NULL, updated_at = ?
				WHERE case_id = ? AND state != 'removed'`, tx.nowMS(), id); err != nil {
				return fmt.Errorf("close case %d: %w", id, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (kind, case_id, ioc_id, dedup, marker, created_at)
				SELECT 'tab', case_id, id, '', '', ? FROM iocs WHERE case_id = ? AND reason = 'case closed'
				ON CONFLICT DO NOTHING`, tx.nowMS(), id); err != nil {
				return fmt.Errorf("close case %d: %w", id, err)
			}
			closed = append(closed, id)
		}
		return nil
	})
	return closed, err
}

// SetCaseIOCState stores the intake cursor of a case after a successful sync.
func (db *DB) SetCaseIOCState(ctx context.Context, caseID, state int64) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE cases SET ioc_state = ?, synced_at = ? WHERE case_id = ?`, state, tx.nowMS(), caseID)
		if err != nil {
			return fmt.Errorf("set ioc state of case %d: %w", caseID, err)
		}
		return nil
	})
}
