package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TabHunt is a hunt that covered an IOC, with its progress.
type TabHunt struct {
	Hunt
	Progress
}

// Unreported counts the hosts of an ended hunt that never reported: their
// flows were scheduled and had not finished when the hunt expired or was
// stopped. They were not searched.
func (h TabHunt) Unreported() int64 {
	switch h.Hunt.State {
	case HuntFinished, HuntStopped, HuntExpired:
		return max(h.Scheduled-h.Finished, 0)
	}
	return 0
}

// Incomplete reports whether a host of the hunt errored, timed out, could
// not search everything, or, the hunt ended, never reported: such a hunt
// is never reported clean.
func (h TabHunt) Incomplete() bool { return h.Progress.Incomplete() || h.Unreported() > 0 }

// TabHit is a hit shown on an IOC's tab.
type TabHit struct {
	ClientID  string
	Hostname  string
	Evidence  string
	Source    string
	EventTime time.Time
	FirstSeen time.Time
	// Collection is the hit's follow-up collection (ID 0: none).
	Collection Collection
}

// TabCase is one case's part of an IOC's tab: its (case, IOC) row with the
// case's customer, the hunts that covered it, and its hits.
type TabCase struct {
	IOC       IOC
	Customer  string
	CaseOpen  bool
	Hunts     []TabHunt
	HitCount  int
	HostCount int
	Hits      []TabHit // newest first, up to the limit
	Parked    []ParkedWrite
}

// TabData is what the "Velociraptor hunt" tab of one IRIS IOC can show. In
// IRIS 2.4 an IOC, and so its tab, is one object read from every case that
// links it: the data covers every case velohunt knows links it.
type TabData struct {
	IRISID int64
	Cases  []TabCase // by case id; rows unlinked from their case are left out
	// HostCount is the number of distinct hosts hit over every case.
	HostCount int
	// Fingerprint and Written describe the last tab written ("" and zero
	// when none was).
	Fingerprint string
	Written     time.Time
}

// FindTabData gathers the tab of the IRIS IOC of a store row, with up to
// maxHits hits per case.
func (db *DB) FindTabData(ctx context.Context, iocID int64, maxHits int) (TabData, error) {
	var d TabData
	row, err := db.FindIOC(ctx, iocID)
	if err != nil {
		return d, err
	}
	d.IRISID = row.IRISID
	rows, err := db.queryIOCs(ctx, `WHERE iris_id = ? AND NOT (state = 'removed' AND reason = ?) ORDER BY case_id`, row.IRISID, ReasonUnlinked)
	if err != nil {
		return d, err
	}
	if len(rows) == 0 {
		rows = []IOC{row} // unlinked everywhere velohunt knows: say so
	}
	for _, r := range rows {
		c, err := db.tabCase(ctx, r, maxHits)
		if err != nil {
			return d, err
		}
		d.Cases = append(d.Cases, c)
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT h.server || '/' || h.client_id) FROM hits h JOIN iocs i ON i.id = h.ioc_id
		WHERE i.iris_id = ? AND NOT (i.state = 'removed' AND i.reason = ?)`, row.IRISID, ReasonUnlinked).Scan(&d.HostCount); err != nil {
		return d, fmt.Errorf("tab hosts: %w", err)
	}
	var written sql.NullInt64
	err = db.db.QueryRowContext(ctx, `SELECT fingerprint, written_at FROM tabs WHERE iris_id = ?`, row.IRISID).Scan(&d.Fingerprint, &written)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("tab of ioc %d: %w", row.IRISID, err)
	}
	d.Written = msToTime(written)
	return d, nil
}

func (db *DB) tabCase(ctx context.Context, r IOC, maxHits int) (TabCase, error) {
	c := TabCase{IOC: r}
	err := db.db.QueryRowContext(ctx, `SELECT customer, is_open FROM cases WHERE case_id = ?`, r.CaseID).Scan(&c.Customer, &c.CaseOpen)
	if err != nil {
		return c, fmt.Errorf("tab case %d: %w", r.CaseID, err)
	}
	hunts, err := db.queryHunts(ctx, `WHERE id IN (SELECT hunt_id FROM hunt_iocs WHERE ioc_id = ?) ORDER BY id DESC LIMIT 10`, r.ID)
	if err != nil {
		return c, err
	}
	for _, h := range hunts {
		p, err := db.HuntProgress(ctx, h.ID)
		if err != nil {
			return c, err
		}
		c.Hunts = append(c.Hunts, TabHunt{Hunt: h, Progress: p})
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT server || '/' || client_id) FROM hits WHERE ioc_id = ?`, r.ID).
		Scan(&c.HitCount, &c.HostCount); err != nil {
		return c, fmt.Errorf("tab hits: %w", err)
	}
	rows, err := db.db.QueryContext(ctx, `SELECT h.client_id, COALESCE(cl.hostname, ''), h.evidence, h.source, h.event_time, h.created_at,
		COALESCE(co.id, 0), COALESCE(co.state, ''), COALESCE(co.reason, ''), COALESCE(co.flow_id, ''), COALESCE(co.flow_state, ''),
		COALESCE(co.file_size, 0), COALESCE(co.sha256, ''), COALESCE(co.path, ''), COALESCE(co.artifacts, '')
		FROM hits h LEFT JOIN clients cl ON cl.server = h.server AND cl.org = h.org AND cl.client_id = h.client_id
		LEFT JOIN collections co ON co.id = h.collection_id
		WHERE h.ioc_id = ? ORDER BY h.id DESC LIMIT ?`, r.ID, maxHits)
	if err != nil {
		return c, fmt.Errorf("tab hits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t TabHit
		var et sql.NullInt64
		var created int64
		co := &t.Collection
		if err := rows.Scan(&t.ClientID, &t.Hostname, &t.Evidence, &t.Source, &et, &created, &co.ID, &co.State, &co.Reason, &co.FlowID,
			&co.FlowState, &co.FileSize, &co.SHA256, &co.Path, &co.Artifacts); err != nil {
			return c, err
		}
		t.EventTime = msToTime(et)
		t.FirstSeen = time.UnixMilli(created).UTC()
		c.Hits = append(c.Hits, t)
	}
	if err := rows.Err(); err != nil {
		return c, err
	}
	c.Parked, err = db.ParkedWrites(ctx, r.ID, 5)
	return c, err
}

// SetTabWritten records the tab written to an IRIS IOC, and logs the
// write with the status it showed.
func (db *DB) SetTabWritten(ctx context.Context, irisID int64, fingerprint, status string, at time.Time) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tabs (iris_id, fingerprint, written_at) VALUES (?, ?, ?)
			ON CONFLICT (iris_id) DO UPDATE SET fingerprint = excluded.fingerprint, written_at = excluded.written_at`,
			irisID, fingerprint, at.UnixMilli()); err != nil {
			return fmt.Errorf("tab written: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO ioc_log (iris_id, at, event, detail) VALUES (?, ?, ?, ?)`,
			irisID, at.UnixMilli(), LogTabWritten, clipText(status, 500)); err != nil {
			return fmt.Errorf("tab written: %w", err)
		}
		return nil
	})
}

// StaleTabs returns the IRIS IOCs with a hit whose tab was not written
// since their newest hit, up to limit: the hits that are not on a tab yet.
func (db *DB) StaleTabs(ctx context.Context, limit int) ([]int64, error) {
	return db.queryIDs(ctx, "stale tabs", `SELECT x.iris_id FROM (SELECT i.iris_id, MAX(h.created_at) AS last
		FROM hits h JOIN iocs i ON i.id = h.ioc_id GROUP BY i.iris_id) x LEFT JOIN tabs t ON t.iris_id = x.iris_id
		WHERE t.written_at IS NULL OR t.written_at < x.last ORDER BY x.iris_id LIMIT ?`, limit)
}
