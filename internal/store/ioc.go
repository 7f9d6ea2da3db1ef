package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// IOC states.
const (
	StateQueued  = "queued"
	StateHunting = "hunting"
	StateHunted  = "hunted"
	StateRefused = "refused"
	StateRemoved = "removed"
	// StateHit is not stored: Stats counts under it the hunting and hunted
	// IOC rows with at least one hit (queued, refused and removed rows keep
	// their state), so that IOCs found somewhere do not read as merely
	// hunting.
	StateHit = "hit"
)

// ReasonUnlinked is the reason of a row whose IOC is no longer linked to
// its case in IRIS (unlinked or deleted there).
const ReasonUnlinked = "no longer in the case"

// IOCInput is an IRIS IOC of one case, already parsed by the caller.
type IOCInput struct {
	ioc.IOC
	Target ioc.Target // zero when refused
	Reason string     // why it is refused; "" when Target is set
}

// IOC is a stored (case, IOC) row.
type IOC struct {
	ID         int64
	CaseID     int64
	IRISID     int64
	TypeName   string
	Value      string
	Kind       ioc.Kind
	HuntValue  string
	State      string
	Reason     string
	Source     string
	LastHuntAt time.Time
	// CreatedAt is when velohunt first stored the row, UpdatedAt when its
	// state last changed, QueuedAt when it was queued (zero unless queued).
	CreatedAt, UpdatedAt, QueuedAt time.Time
}

// SyncResult counts what a sync changed.
type SyncResult struct {
	Added, Changed, Removed, Refused int
}

// SyncCaseIOCs records the IOCs IRIS lists for a case. New IOCs are queued for
// hunting (or refused with their reason); an IOC whose value or type changed
// is queued again; an unchanged IOC is left alone, so repeated syncs and
// repeated webhooks are idempotent. When complete is true the list is the
// case's whole IOC list, and stored IOCs missing from it are marked removed.
func (db *DB) SyncCaseIOCs(ctx context.Context, caseID int64, list []IOCInput, source string, complete bool) (SyncResult, error) {
	var res SyncResult
	err := db.tx(ctx, func(tx *Tx) error {
		res = SyncResult{}
		existing, err := tx.caseIOCs(ctx, caseID)
		if err != nil {
			return err
		}
		seen := map[int64]bool{}
		for _, in := range list {
			seen[in.ID] = true
			old, ok := existing[in.ID]
			switch {
			case !ok:
				if err := tx.insertIOC(ctx, caseID, in, source); err != nil {
					return err
				}
				res.Added++
				if in.Reason != "" {
					res.Refused++
				}
			case old.Value != in.Value || old.TypeName != in.TypeName || old.State == StateRemoved:
				why := fmt.Sprintf("changed in IRIS (was %s %q)", old.TypeName, clipText(old.Value, 100))
				if old.Value == in.Value && old.TypeName == in.TypeName {
					why = "back in the case"
				}
				if err := tx.replaceIOC(ctx, old.ID, in, source, why); err != nil {
					return err
				}
				res.Changed++
				if in.Reason != "" {
					res.Refused++
				}
			}
		}
		if complete {
			for irisID, old := range existing {
				if seen[irisID] || old.State == StateRemoved {
					continue
				}
				if _, err := tx.ExecContext(ctx, `UPDATE iocs SET state = 'removed', reason = ?, queued_at = NULL, updated_at = ? WHERE id = ?`, ReasonUnlinked, tx.nowMS(), old.ID); err != nil {
					return fmt.Errorf("remove ioc %d: %w", old.ID, err)
				}
				if err := tx.logIOC(ctx, old.ID, LogRemoved, source, ReasonUnlinked); err != nil {
					return err
				}
				res.Removed++
			}
		}
		return nil
	})
	return res, err
}

func (tx *Tx) caseIOCs(ctx context.Context, caseID int64) (map[int64]IOC, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, iris_id, type_name, value, state FROM iocs WHERE case_id = ?`, caseID)
	if err != nil {
		return nil, fmt.Errorf("list iocs of case %d: %w", caseID, err)
	}
	defer rows.Close()
	out := map[int64]IOC{}
	for rows.Next() {
		var i IOC
		if err := rows.Scan(&i.ID, &i.IRISID, &i.TypeName, &i.Value, &i.State); err != nil {
			return nil, fmt.Errorf("list iocs of case %d: %w", caseID, err)
		}
		out[i.IRISID] = i
	}
	return out, rows.Err()
}

func (tx *Tx) insertIOC(ctx context.Context, caseID int64, in IOCInput, source string) error {
	state, queuedAt := tx.initialState(in)
	res, err := tx.ExecContext(ctx, `
		INSERT INTO iocs (case_id, iris_id, type_name, value, tlp_id, kind, hunt_value, state, reason, source, queued_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		caseID, in.ID, in.TypeName, in.Value, in.TLPID, string(in.Target.Kind), in.Target.Value, state, in.Reason, source, queuedAt, tx.nowMS(), tx.nowMS())
	if err != nil {
		return fmt.Errorf("insert ioc %d of case %d: %w", in.ID, caseID, mapErr(err))
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if err := tx.logIOC(ctx, id, LogLearned, source, validation(in)); err != nil {
		return err
	}
	// The tab shows "queued" or "refused" with the reason.
	return tx.enqueueTab(ctx, id)
}

// replaceIOC stores a changed value. The row keeps its id, so the hunts that
// covered the old value stay recorded, but its state restarts from queued.
func (tx *Tx) replaceIOC(ctx context.Context, id int64, in IOCInput, source, why string) error {
	state, queuedAt := tx.initialState(in)
	_, err := tx.ExecContext(ctx, `
		UPDATE iocs SET type_name = ?, value = ?, tlp_id = ?, kind = ?, hunt_value = ?, state = ?, reason = ?,
			source = ?, queued_at = ?, updated_at = ? WHERE id = ?`,
		in.TypeName, in.Value, in.TLPID, string(in.Target.Kind), in.Target.Value, state, in.Reason, source, queuedAt, tx.nowMS(), id)
	if err != nil {
		return fmt.Errorf("update ioc %d: %w", id, err)
	}
	if err := tx.logIOC(ctx, id, LogChanged, source, why+"; "+validation(in)); err != nil {
		return err
	}
	return tx.enqueueTab(ctx, id)
}

func (tx *Tx) initialState(in IOCInput) (string, sql.NullInt64) {
	if in.Reason != "" {
		return StateRefused, sql.NullInt64{}
	}
	return StateQueued, sql.NullInt64{Int64: tx.nowMS(), Valid: true}
}

// RequeueIOC queues the (case, IOC) rows of an IRIS IOC for a new hunt, as
// asked by a manual trigger or the hunt command: the rows of the given
// cases, or of every open case when cases is nil. Rows already queued are
// left alone. Rows covered by a running hunt are queued only when overlap
// is set (an analyst's explicit request); otherwise the same (case, IOC) is
// never hunted twice at once. It returns how many rows it queued.
func (db *DB) RequeueIOC(ctx context.Context, irisID int64, cases []int64, source string, overlap bool) (int, error) {
	var n int
	err := db.tx(ctx, func(tx *Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, `SELECT id, case_id FROM iocs WHERE iris_id = ?
			AND (state = 'hunted' OR (? AND state = 'hunting'))
			AND case_id IN (SELECT case_id FROM cases WHERE is_open = 1)`, irisID, overlap)
		if err != nil {
			return fmt.Errorf("requeue ioc %d: %w", irisID, err)
		}
		var ids []int64
		for rows.Next() {
			var id, caseID int64
			if err := rows.Scan(&id, &caseID); err != nil {
				rows.Close()
				return fmt.Errorf("requeue ioc %d: %w", irisID, err)
			}
			if cases == nil || slices.Contains(cases, caseID) {
				ids = append(ids, id)
			}
		}
		rows.Close()
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE iocs SET state = 'queued', queued_at = ?, source = ?, updated_at = ? WHERE id = ?`,
				tx.nowMS(), source, tx.nowMS(), id); err != nil {
				return fmt.Errorf("requeue ioc %d: %w", irisID, err)
			}
			if err := tx.logIOC(ctx, id, LogRequeued, source, ""); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// FindIOCs returns the stored rows of an IRIS IOC, one per case.
func (db *DB) FindIOCs(ctx context.Context, irisID int64) ([]IOC, error) {
	return db.queryIOCs(ctx, `WHERE iris_id = ? ORDER BY case_id`, irisID)
}

// CaseIOCs returns the stored IOCs of a case.
func (db *DB) CaseIOCs(ctx context.Context, caseID int64) ([]IOC, error) {
	return db.queryIOCs(ctx, `WHERE case_id = ? ORDER BY iris_id`, caseID)
}

// RefusedIOCs returns up to limit refused IOCs of open cases, newest first.
func (db *DB) RefusedIOCs(ctx context.Context, limit int) ([]IOC, error) {
	return db.queryIOCs(ctx, `WHERE state = 'refused' AND case_id IN (SELECT case_id FROM cases WHERE is_open = 1) ORDER BY updated_at DESC LIMIT ?`, limit)
}

func (db *DB) queryIOCs(ctx context.Context, where string, args ...any) ([]IOC, error) {
	rows, err := db.db.QueryContext(ctx, `
		SELECT id, case_id, iris_id, type_name, value, kind, hunt_value, state, reason, source, last_hunt_at, created_at, updated_at, queued_at
		FROM iocs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query iocs: %w", err)
	}
	defer rows.Close()
	var out []IOC
	for rows.Next() {
		var i IOC
		var kind string
		var last, created, updated, queued sql.NullInt64
		if err := rows.Scan(&i.ID, &i.CaseID, &i.IRISID, &i.TypeName, &i.Value, &kind, &i.HuntValue, &i.State, &i.Reason, &i.Source, &last,
			&created, &updated, &queued); err != nil {
			return nil, fmt.Errorf("query iocs: %w", err)
		}
		i.Kind = ioc.Kind(kind)
		i.LastHuntAt, i.CreatedAt, i.UpdatedAt, i.QueuedAt = msToTime(last), msToTime(created), msToTime(updated), msToTime(queued)
		out = append(out, i)
	}
	return out, rows.Err()
}

// FindIOC returns one stored row by its id. Returns ENOTFOUND when absent.
func (db *DB) FindIOC(ctx context.Context, id int64) (IOC, error) {
	list, err := db.queryIOCs(ctx, `WHERE id = ?`, id)
	if err != nil {
		return IOC{}, err
	}
	if len(list) == 0 {
		return IOC{}, ioc.Errorf(ioc.ENOTFOUND, "ioc row %d not found", id)
	}
	return list[0], nil
}
