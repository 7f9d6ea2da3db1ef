package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// TabHunt is a hunt that covered an IOC, with its progress.
type TabHunt struct {
	Hunt
	Progress
}

// TabHit is a hit shown on an IOC's tab.
type TabHit struct {
	ClientID  string
	Hostname  string
	Evidence  string
	Source    string
	EventTime time.Time
	FirstSeen time.Time
}

// TabData is what the "Velociraptor hunt" tab of one IOC shows.
type TabData struct {
	IOC       IOC
	Hunts     []TabHunt
	HitCount  int
	HostCount int
	Hits      []TabHit // newest first, up to the limit
	Parked    []ParkedWrite
}

// FindTabData gathers the tab of an IOC row, with up to maxHits hits.
func (db *DB) FindTabData(ctx context.Context, iocID int64, maxHits int) (TabData, error) {
	var d TabData
	var err error
	if d.IOC, err = db.FindIOC(ctx, iocID); err != nil {
		return d, err
	}
	hunts, err := db.queryHunts(ctx, `WHERE id IN (SELECT hunt_id FROM hunt_iocs WHERE ioc_id = ?) ORDER BY id DESC LIMIT 10`, iocID)
	if err != nil {
		return d, err
	}
	for _, h := range hunts {
		p, err := db.HuntProgress(ctx, h.ID)
		if err != nil {
			return d, err
		}
		d.Hunts = append(d.Hunts, TabHunt{Hunt: h, Progress: p})
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT server || '/' || client_id) FROM hits WHERE ioc_id = ?`, iocID).
		Scan(&d.HitCount, &d.HostCount); err != nil {
		return d, fmt.Errorf("tab hits: %w", err)
	}
	rows, err := db.db.QueryContext(ctx, `SELECT h.client_id, COALESCE(c.hostname, ''), h.evidence, h.source, h.event_time, h.created_at
		FROM hits h LEFT JOIN clients c ON c.server = h.server AND c.org = h.org AND c.client_id = h.client_id
		WHERE h.ioc_id = ? ORDER BY h.id DESC LIMIT ?`, iocID, maxHits)
	if err != nil {
		return d, fmt.Errorf("tab hits: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t TabHit
		var et sql.NullInt64
		var created int64
		if err := rows.Scan(&t.ClientID, &t.Hostname, &t.Evidence, &t.Source, &et, &created); err != nil {
			return d, err
		}
		t.EventTime = msToTime(et)
		t.FirstSeen = time.UnixMilli(created).UTC()
		d.Hits = append(d.Hits, t)
	}
	if err := rows.Err(); err != nil {
		return d, err
	}
	d.Parked, err = db.ParkedWrites(ctx, iocID, 5)
	return d, err
}
