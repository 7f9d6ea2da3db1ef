package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Write is a queued write to IRIS.
type Write struct {
	ID       int64
	Kind     string // asset, event, tab
	CaseID   int64
	IOCID    int64 // store IOC row
	HitID    int64 // 0 for tab writes
	Marker   string
	Attempts int
	IRISIOC  int64 // the IRIS IOC id
	// Server and ClientID name the host of an asset or event write (empty
	// for tab writes).
	Server, ClientID string
}

// Host is the key of the IRIS asset an asset write goes to.
func (w Write) Host() string { return fmt.Sprintf("%d\x00%s\x00%s", w.CaseID, w.Server, w.ClientID) }

// EnqueueTabs queues a tab update for each IOC row, unless one is pending.
func (db *DB) EnqueueTabs(ctx context.Context, iocIDs []int64) error {
	if len(iocIDs) == 0 {
		return nil
	}
	return db.tx(ctx, func(tx *Tx) error {
		for _, id := range iocIDs {
			if err := tx.enqueueTab(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// enqueueTab queues a tab update of an IOC row unless one is pending. A
// pending one that was put off without a failure (held back by the tab's
// least interval, which applies to a change of details only) is made due
// now: what changed since may be a new status, which goes at once. One
// retrying after a failure keeps its backoff.
func (tx *Tx) enqueueTab(ctx context.Context, iocID int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (kind, case_id, ioc_id, dedup, marker, created_at)
		SELECT 'tab', case_id, id, '', '', ? FROM iocs WHERE id = ? ON CONFLICT DO NOTHING`, tx.nowMS(), iocID)
	if err != nil {
		return fmt.Errorf("enqueue tab: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE outbox SET next_attempt_at = ? WHERE kind = 'tab' AND ioc_id = ?
		AND done_at IS NULL AND parked = 0 AND last_error = '' AND next_attempt_at > ?`, tx.nowMS(), iocID, tx.nowMS())
	if err != nil {
		return fmt.Errorf("enqueue tab: %w", err)
	}
	return nil
}

const dueColumns = `SELECT o.id, o.kind, o.case_id, o.ioc_id, COALESCE(o.hit_id, 0), o.marker, o.attempts, i.iris_id,
	COALESCE(h.server, ''), COALESCE(h.client_id, '') FROM outbox o JOIN iocs i ON i.id = o.ioc_id LEFT JOIN hits h ON h.id = o.hit_id
	WHERE o.done_at IS NULL AND o.parked = 0 AND o.next_attempt_at <= ?`

// DueWrites returns pending writes whose time has come, oldest first: up to
// limit, plus the due asset writes of the same hosts beyond the limit, so
// that every IOC found on a host in one pass is linked to its asset in one
// request (a host's hits are recorded in one transaction, but a limit can
// fall between them).
func (db *DB) DueWrites(ctx context.Context, limit int) ([]Write, error) {
	now := db.Now().UnixMilli()
	out, err := db.scanWrites(ctx, dueColumns+` ORDER BY o.id LIMIT ?`, now, limit)
	if err != nil || len(out) < limit {
		return out, err
	}
	hosts := map[string]bool{}
	var clients []any
	for _, w := range out {
		if w.Kind == "asset" && !hosts[w.Host()] {
			hosts[w.Host()] = true
			clients = append(clients, w.ClientID)
		}
	}
	for len(clients) > 0 {
		chunk := clients[:min(len(clients), 500)]
		clients = clients[len(chunk):]
		args := append([]any{now, out[len(out)-1].ID}, chunk...)
		more, err := db.scanWrites(ctx, dueColumns+` AND o.kind = 'asset' AND o.id > ? AND h.client_id IN (?`+
			strings.Repeat(",?", len(chunk)-1)+`) ORDER BY o.id`, args...)
		if err != nil {
			return nil, err
		}
		for _, w := range more {
			if hosts[w.Host()] {
				out = append(out, w)
			}
		}
	}
	return out, nil
}

func (db *DB) scanWrites(ctx context.Context, q string, args ...any) ([]Write, error) {
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("due writes: %w", err)
	}
	defer rows.Close()
	var out []Write
	for rows.Next() {
		var w Write
		if err := rows.Scan(&w.ID, &w.Kind, &w.CaseID, &w.IOCID, &w.HitID, &w.Marker, &w.Attempts, &w.IRISIOC, &w.Server, &w.ClientID); err != nil {
			return nil, fmt.Errorf("due writes: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// BeginWrite counts an attempt before the IRIS call, so that a crash during
// the call is known: the object may exist and is looked up by its marker.
func (db *DB) BeginWrite(ctx context.Context, id int64) error {
	return db.exec(ctx, `UPDATE outbox SET attempts = attempts + 1 WHERE id = ?`, id)
}

// WriteDone records a write as done, with the IRIS object id it made. A
// done tab write is deleted: it guards against nothing (asset and event
// writes stay, their dedup keys make each happen once), and tabs are queued
// at every change.
func (db *DB) WriteDone(ctx context.Context, id, irisID int64) error {
	return db.tx(ctx, func(tx *Tx) error {
		// The tab just written shows the IOC's current state: the parked tab
		// writes of the same IRIS IOC (from any case) are obsolete.
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE kind = 'tab' AND parked = 1 AND id != ? AND ioc_id IN
			(SELECT i.id FROM iocs i JOIN iocs d ON d.iris_id = i.iris_id JOIN outbox o ON o.ioc_id = d.id
			WHERE o.id = ? AND o.kind = 'tab')`, id, id); err != nil {
			return fmt.Errorf("write done: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ? AND kind = 'tab'`, id); err != nil {
			return fmt.Errorf("write done: %w", err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET done_at = ?, iris_id = ?, last_error = '' WHERE id = ?`, tx.nowMS(), irisID, id)
		return err
	})
}

// WriteRetry records a failed attempt and when to try again.
func (db *DB) WriteRetry(ctx context.Context, id int64, msg string, next time.Time) error {
	return db.exec(ctx, `UPDATE outbox SET last_error = ?, next_attempt_at = ? WHERE id = ?`, clipText(msg, 1000), next.UnixMilli(), id)
}

// WritePark gives up on a write that IRIS refuses; the reason is shown by
// `velohunt status` and on the IOC's tab.
// A tab write parked again replaces the IOC's earlier parked tab write:
// each renders the whole tab, so one is all a retry needs.
func (db *DB) WritePark(ctx context.Context, id int64, reason string) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE kind = 'tab' AND parked = 1 AND id != ?
			AND ioc_id = (SELECT ioc_id FROM outbox WHERE id = ? AND kind = 'tab')`, id, id); err != nil {
			return fmt.Errorf("park write: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET parked = 1, last_error = ? WHERE id = ?`, clipText(reason, 1000), id); err != nil {
			return fmt.Errorf("park write: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ioc_log (iris_id, ioc_id, at, event, source, detail)
			SELECT i.iris_id, o.ioc_id, ?, ?, o.kind, ? FROM outbox o JOIN iocs i ON i.id = o.ioc_id WHERE o.id = ?`,
			tx.nowMS(), LogParked, clipText(reason, 1000), id); err != nil {
			return fmt.Errorf("park write: %w", err)
		}
		return nil
	})
}

// WriteDefer postpones a write that waits for another (an event waits for
// its asset) without counting a failure.
func (db *DB) WriteDefer(ctx context.Context, id int64, next time.Time) error {
	return db.exec(ctx, `UPDATE outbox SET next_attempt_at = ? WHERE id = ?`, next.UnixMilli(), id)
}

// AssetID returns the IRIS asset of a client in a case, or ENOTFOUND.
func (db *DB) AssetID(ctx context.Context, caseID int64, server, clientID string) (int64, error) {
	var id int64
	err := db.db.QueryRowContext(ctx, `SELECT iris_asset_id FROM assets WHERE case_id = ? AND server = ? AND client_id = ?`,
		caseID, server, clientID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ioc.Errorf(ioc.ENOTFOUND, "no asset for client %s in case %d", clientID, caseID)
	}
	return id, err
}

// SetAssetID records the IRIS asset of a client in a case.
func (db *DB) SetAssetID(ctx context.Context, caseID int64, server, clientID string, assetID int64) error {
	return db.exec(ctx, `INSERT INTO assets (case_id, server, client_id, iris_asset_id) VALUES (?, ?, ?, ?)
		ON CONFLICT (case_id, server, client_id) DO UPDATE SET iris_asset_id = excluded.iris_asset_id`, caseID, server, clientID, assetID)
}

// HitDetail is everything a write needs about one hit.
type HitDetail struct {
	ID        int64
	IOC       IOC
	Hunt      Hunt
	Client    Client
	Evidence  string
	Source    string
	EventTime time.Time
	Row       []byte
	FirstSeen time.Time
}

// FindHitDetail returns a hit with its IOC, hunt and client.
func (db *DB) FindHitDetail(ctx context.Context, hitID int64) (HitDetail, error) {
	var d HitDetail
	var iocID, huntID int64
	var et sql.NullInt64
	var created int64
	var server, org, client string
	err := db.db.QueryRowContext(ctx, `SELECT id, ioc_id, hunt_id, server, org, client_id, evidence, source, event_time, row_json, created_at
		FROM hits WHERE id = ?`, hitID).Scan(&d.ID, &iocID, &huntID, &server, &org, &client, &d.Evidence, &d.Source, &et, &d.Row, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return d, ioc.Errorf(ioc.ENOTFOUND, "hit %d not found", hitID)
	} else if err != nil {
		return d, fmt.Errorf("hit %d: %w", hitID, err)
	}
	d.EventTime = msToTime(et)
	d.FirstSeen = time.UnixMilli(created).UTC()
	if d.IOC, err = db.FindIOC(ctx, iocID); err != nil {
		return d, err
	}
	if d.Hunt, err = db.FindHunt(ctx, huntID); err != nil {
		return d, err
	}
	d.Client, err = db.FindClient(ctx, server, org, client)
	if ioc.ErrorCode(err) == ioc.ENOTFOUND {
		err = nil // shown by client id only
	}
	return d, err
}

// OutboxStats summarises the outbox.
type OutboxStats struct {
	Pending   int
	OldestAge time.Duration
	Parked    int
	Retrying  int // pending writes that failed at least once
	ByKind    map[string]int
	// HitsWaiting counts hits whose asset or event is not in IRIS yet.
	HitsWaiting int
	// DoneLastMinute counts asset and event writes done in the last 60 s.
	DoneLastMinute int
}

// WritesPerSecond is the rate of asset and event writes over the last
// minute.
func (s OutboxStats) WritesPerSecond() float64 { return float64(s.DoneLastMinute) / 60 }

// DrainSeconds estimates the time to write the pending assets and events at
// the last minute's rate: 0 when none is pending, -1 when none was written
// in the last minute.
func (s OutboxStats) DrainSeconds() float64 {
	n := s.ByKind["asset"] + s.ByKind["event"]
	switch {
	case n == 0:
		return 0
	case s.DoneLastMinute == 0:
		return -1
	}
	return float64(n) / s.WritesPerSecond()
}

// OutboxStats counts pending and parked writes.
func (db *DB) OutboxStats(ctx context.Context) (OutboxStats, error) {
	s := OutboxStats{ByKind: map[string]int{}}
	var oldest sql.NullInt64
	err := db.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at), COALESCE(SUM(attempts > 0), 0) FROM outbox
		WHERE done_at IS NULL AND parked = 0`).Scan(&s.Pending, &oldest, &s.Retrying)
	if err != nil {
		return s, fmt.Errorf("outbox stats: %w", err)
	}
	if oldest.Valid {
		s.OldestAge = db.Now().Sub(time.UnixMilli(oldest.Int64))
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE parked = 1`).Scan(&s.Parked); err != nil {
		return s, fmt.Errorf("outbox stats: %w", err)
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT hit_id) FROM outbox WHERE done_at IS NULL AND parked = 0
		AND hit_id IS NOT NULL`).Scan(&s.HitsWaiting); err != nil {
		return s, fmt.Errorf("outbox stats: %w", err)
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE done_at >= ?`,
		db.Now().Add(-time.Minute).UnixMilli()).Scan(&s.DoneLastMinute); err != nil {
		return s, fmt.Errorf("outbox stats: %w", err)
	}
	return s, db.countBy(ctx, `SELECT kind, COUNT(*) FROM outbox WHERE done_at IS NULL AND parked = 0 GROUP BY kind`, s.ByKind)
}

// ParkedWrite is a write IRIS refused.
type ParkedWrite struct {
	ID     int64
	Kind   string
	CaseID int64
	IOCID  int64 // store row
	IRISID int64 // IRIS IOC id
	Reason string
}

// ParkedWrites returns parked writes, newest first; iocID 0 means all.
func (db *DB) ParkedWrites(ctx context.Context, iocID int64, limit int) ([]ParkedWrite, error) {
	q, args := `SELECT o.id, o.kind, o.case_id, o.ioc_id, i.iris_id, o.last_error FROM outbox o
		JOIN iocs i ON i.id = o.ioc_id WHERE o.parked = 1 ORDER BY o.id DESC LIMIT ?`, []any{limit}
	if iocID != 0 {
		q, args = `SELECT o.id, o.kind, o.case_id, o.ioc_id, i.iris_id, o.last_error FROM outbox o
		JOIN iocs i ON i.id = o.ioc_id WHERE o.parked = 1 AND o.ioc_id = ? ORDER BY o.id DESC LIMIT ?`, []any{iocID, limit}
	}
	rows, err := db.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("parked writes: %w", err)
	}
	defer rows.Close()
	var out []ParkedWrite
	for rows.Next() {
		var p ParkedWrite
		if err := rows.Scan(&p.ID, &p.Kind, &p.CaseID, &p.IOCID, &p.IRISID, &p.Reason); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// RetryParked puts parked writes back in the queue (after an operator fixed
// the cause). It returns how many.
func (db *DB) RetryParked(ctx context.Context) (int, error) {
	var n int64
	err := db.tx(ctx, func(tx *Tx) error {
		// A pending tab update for the same IOC makes a parked one redundant,
		// and of several parked tab writes of one IOC (parked by an older
		// velohunt) the newest is enough: at most one tab write per IOC may
		// be pending.
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE parked = 1 AND kind = 'tab' AND ioc_id IN
			(SELECT ioc_id FROM outbox WHERE kind = 'tab' AND done_at IS NULL AND parked = 0)`); err != nil {
			return fmt.Errorf("retry parked: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE parked = 1 AND kind = 'tab' AND id NOT IN
			(SELECT MAX(id) FROM outbox WHERE parked = 1 AND kind = 'tab' GROUP BY ioc_id)`); err != nil {
			return fmt.Errorf("retry parked: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET parked = 0, next_attempt_at = 0 WHERE parked = 1`)
		if err != nil {
			return fmt.Errorf("retry parked: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// IOCsWithAttemptedTabs returns the IRIS IOCs with a tab write attempted
// but not done: a process that stopped in the middle of one may have left
// the request running in IRIS, and the tab is one object whatever the case
// it is written through.
func (db *DB) IOCsWithAttemptedTabs(ctx context.Context) ([]int64, error) {
	return db.queryIDs(ctx, "attempted tabs", `SELECT DISTINCT i.iris_id FROM outbox o JOIN iocs i ON i.id = o.ioc_id
		WHERE o.kind = 'tab' AND o.attempts > 0 AND o.done_at IS NULL AND o.parked = 0`)
}

// CasesWithAttemptedOverwrites returns the cases that have asset or tab
// writes attempted but not done: a process that stopped in the middle of one
// may have left the request running in IRIS.
func (db *DB) CasesWithAttemptedOverwrites(ctx context.Context) ([]int64, error) {
	return db.queryIDs(ctx, "attempted writes", `SELECT DISTINCT case_id FROM outbox
		WHERE kind IN ('asset','tab') AND attempts > 0 AND done_at IS NULL AND parked = 0`)
}

// queryIDs runs a query of one integer column and returns its values.
func (db *DB) queryIDs(ctx context.Context, what, query string, args ...any) ([]int64, error) {
	return queryIDs(ctx, db.db, what, query, args...)
}

// querier is the database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryIDs runs a query of one integer column on q and returns its values.
func queryIDs(ctx context.Context, q querier, what, query string, args ...any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
