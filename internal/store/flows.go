package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// FlowCursor is one flow of a hunt as last read: its state and how many of
// its rows were processed. A client has one flow per launch: relaunching it
// in the hunt makes a new flow, read from its own cursor.
type FlowCursor struct {
	ClientID  string
	FlowID    string
	State     string // as Velociraptor names it: RUNNING, FINISHED, ERROR...
	Status    string // the error of an ERROR flow
	TotalRows int64
	RowsRead  int64
	// CreatedUS is the flow's create_time (µs): a client's newest flow
	// says its state in the hunt.
	CreatedUS int64
	// Index is the flow's row in the hunt's flow list (hunt_flows(),
	// in schedule order); -1 when not known.
	Index int64
}

// Key identifies a flow within its hunt.
func (f FlowCursor) Key() string { return f.ClientID + "/" + f.FlowID }

// FlowCursors returns the flows of a hunt known to velohunt, by Key.
func (db *DB) FlowCursors(ctx context.Context, huntID int64) (map[string]FlowCursor, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT client_id, flow_id, state, status, total_rows, rows_read, created_us, idx
		FROM hunt_flows WHERE hunt_id = ?`, huntID)
	if err != nil {
		return nil, fmt.Errorf("flow cursors: %w", err)
	}
	defer rows.Close()
	out := map[string]FlowCursor{}
	for rows.Next() {
		var f FlowCursor
		if err := rows.Scan(&f.ClientID, &f.FlowID, &f.State, &f.Status, &f.TotalRows, &f.RowsRead, &f.CreatedUS, &f.Index); err != nil {
			return nil, fmt.Errorf("flow cursors: %w", err)
		}
		out[f.Key()] = f
	}
	return out, rows.Err()
}

// RelaunchPending reports whether a hunt has a flow not done that was
// relaunched: its id is not named after the hunt (F.<hunt>.H), and its end
// moves none of the hunt's stats in Velociraptor 0.77.2.
func (db *DB) RelaunchPending(ctx context.Context, huntID int64) (bool, error) {
	var n int
	err := db.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM hunt_flows WHERE hunt_id = ?
		AND state NOT IN ('FINISHED', 'ERROR') AND flow_id NOT LIKE '%.H')`, huntID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("relaunched flows: %w", err)
	}
	return n == 1, nil
}

// SetFlowStates records the state, error and row count of flows, keeping
// their cursors.
func (db *DB) SetFlowStates(ctx context.Context, huntID int64, flows []FlowCursor) error {
	if len(flows) == 0 {
		return nil
	}
	return db.tx(ctx, func(tx *Tx) error {
		for _, f := range flows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO hunt_flows (hunt_id, client_id, flow_id, state, status, total_rows, created_us, idx, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hunt_id, client_id, flow_id) DO UPDATE SET
				state = excluded.state, status = excluded.status, total_rows = excluded.total_rows,
				created_us = excluded.created_us, idx = excluded.idx, updated_at = excluded.updated_at`,
				huntID, f.ClientID, f.FlowID, f.State, clipText(f.Status, 1000), f.TotalRows, f.CreatedUS, f.Index, tx.nowMS()); err != nil {
				return fmt.Errorf("flow state: %w", err)
			}
		}
		return nil
	})
}

// moveFlowCursor records how far a flow was read, and moves the hunt's
// total of rows read by as much.
func (tx *Tx) moveFlowCursor(ctx context.Context, huntID int64, f FlowCursor) error {
	var old int64
	err := tx.QueryRowContext(ctx, `SELECT rows_read FROM hunt_flows WHERE hunt_id = ? AND client_id = ? AND flow_id = ?`,
		huntID, f.ClientID, f.FlowID).Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("flow cursor: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO hunt_flows (hunt_id, client_id, flow_id, rows_read, created_us, idx, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (hunt_id, client_id, flow_id) DO UPDATE SET rows_read = excluded.rows_read, updated_at = excluded.updated_at`,
		huntID, f.ClientID, f.FlowID, f.RowsRead, f.CreatedUS, f.Index, tx.nowMS()); err != nil {
		return fmt.Errorf("flow cursor: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE hunts SET rows_read = rows_read + ? WHERE id = ?`, f.RowsRead-old, huntID); err != nil {
		return fmt.Errorf("results cursor: %w", err)
	}
	return nil
}

// newestFlows selects each client's newest flow of hunt ?: the one created
// last (the later row on a tie).
const newestFlows = `SELECT * FROM hunt_flows f WHERE f.hunt_id = ? AND ` + isNewestFlow

// isNewestFlow holds for a row f of hunt_flows that is its client's newest
// flow of its hunt.
const isNewestFlow = `NOT EXISTS (SELECT 1 FROM hunt_flows g
	WHERE g.hunt_id = f.hunt_id AND g.client_id = f.client_id
	AND (g.created_us > f.created_us OR (g.created_us = f.created_us AND g.rowid > f.rowid)))`

// firstFlowError returns the first error of a hunt's failed hosts ("client:
// status"), or "": a host's newest flow decides, so a relaunch that
// finished clears the error of the flow it replaced.
func (db *DB) firstFlowError(ctx context.Context, huntID int64) (string, error) {
	var first string
	err := db.db.QueryRowContext(ctx, `SELECT COALESCE(MIN(client_id || ': ' || status), '')
		FROM (`+newestFlows+`) WHERE state = 'ERROR' AND status != ''`, huntID).Scan(&first)
	if err != nil {
		return "", fmt.Errorf("flow errors: %w", err)
	}
	return first, nil
}
