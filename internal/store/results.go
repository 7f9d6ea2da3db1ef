package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Progress is a hunt's progress as read from Velociraptor.
type Progress struct {
	VRState   string
	Scheduled int64
	Finished  int64
	Errored   int64
	TotalRows int64
	RowsRead  int64
	CheckedAt time.Time
	// Stats are the hunt's stats as Velociraptor reported them (state and
	// counts), where Scheduled, Finished and Errored count hosts by their
	// newest flow: Velociraptor's counters count flows, and a relaunched
	// host has two. The watcher lists the flows again when Stats move.
	Stats string
	// FirstError is the first error of a host's flow ("C.x: status"), read
	// from the flows when Velociraptor counts errors; "" when none failed
	// or none was read yet.
	FirstError string
	// Uncovered are the hosts that finished but could not search
	// everything their artifact applies to them (coverage), with why.
	Uncovered []HostGap
}

// Incomplete reports whether a host of the hunt errored, timed out, or
// could not search everything: such a hunt is never reported clean.
func (p Progress) Incomplete() bool { return p.Errored > 0 || len(p.Uncovered) > 0 }

// FirstGap describes the first host that could not search everything
// ("host: source: why; ..."), or "".
func (p Progress) FirstGap() string {
	if len(p.Uncovered) == 0 {
		return ""
	}
	return p.Uncovered[0].String()
}

// RunningHunts returns the hunts velohunt watches.
func (db *DB) RunningHunts(ctx context.Context) ([]Hunt, error) {
	return db.queryHunts(ctx, `WHERE state = 'running' ORDER BY id`)
}

// HuntProgress returns the stored progress of a hunt.
func (db *DB) HuntProgress(ctx context.Context, id int64) (Progress, error) {
	var p Progress
	var checked int64
	err := db.db.QueryRowContext(ctx, `SELECT vr_state, scheduled, finished, errored, total_rows, rows_read, checked_at, vr_stats
		FROM hunts WHERE id = ?`, id).Scan(&p.VRState, &p.Scheduled, &p.Finished, &p.Errored, &p.TotalRows, &p.RowsRead, &checked, &p.Stats)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ioc.Errorf(ioc.ENOTFOUND, "hunt %d not found", id)
	}
	if err != nil {
		return p, err
	}
	p.CheckedAt = time.UnixMilli(checked).UTC()
	if p.Errored > 0 {
		if p.FirstError, err = db.firstFlowError(ctx, id); err != nil {
			return p, err
		}
	}
	p.Uncovered, err = db.coverageGaps(ctx, id)
	return p, err
}

// SetHuntProgress stores a hunt's progress (not the results cursor). It
// reports whether anything an analyst sees changed.
func (db *DB) SetHuntProgress(ctx context.Context, id int64, p Progress) (bool, error) {
	var changed bool
	err := db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hunts SET vr_state = ?, scheduled = ?, finished = ?, errored = ?,
			total_rows = ?, vr_stats = ?, checked_at = ? WHERE id = ?
			AND (vr_state != ? OR scheduled != ? OR finished != ? OR errored != ? OR total_rows != ? OR vr_stats != ?)`,
			p.VRState, p.Scheduled, p.Finished, p.Errored, p.TotalRows, p.Stats, tx.nowMS(), id,
			p.VRState, p.Scheduled, p.Finished, p.Errored, p.TotalRows, p.Stats)
		if err != nil {
			return fmt.Errorf("hunt progress: %w", err)
		}
		n, _ := res.RowsAffected()
		changed = n > 0
		if !changed {
			_, err = tx.ExecContext(ctx, `UPDATE hunts SET checked_at = ? WHERE id = ?`, tx.nowMS(), id)
		}
		return err
	})
	return changed, err
}

// EndHunt records that a hunt ended (finished, stopped or expired). IOCs it
// covered and that no other running hunt covers become "hunted". It returns
// the ids of the IOC rows the hunt covered.
func (db *DB) EndHunt(ctx context.Context, id int64, state string) ([]int64, error) {
	return db.EndHuntWithReason(ctx, id, state, "")
}

// EndHuntWithReason is EndHunt with the reason of an early stop (planned,
// created or running hunts).
func (db *DB) EndHuntWithReason(ctx context.Context, id int64, state, reason string) ([]int64, error) {
	var iocs []int64
	err := db.tx(ctx, func(tx *Tx) error {
		var err error
		_, iocs, err = tx.endHunt(ctx, id, state, reason)
		return err
	})
	return iocs, err
}

// endHunt ends a planned, created or running hunt and moves the IOCs it
// covered, and no other active hunt covers, to "hunted". It reports
// whether the hunt was active, and returns the ids of its IOC rows.
func (tx *Tx) endHunt(ctx context.Context, id int64, state, reason string) (bool, []int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE hunts SET state = ?, ended_at = ?, end_reason = ?
		WHERE id = ? AND state IN ('planned','created','running')`, state, tx.nowMS(), reason, id)
	if err != nil {
		return false, nil, fmt.Errorf("end hunt %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	_, err = tx.ExecContext(ctx, `
		UPDATE iocs SET state = 'hunted', updated_at = ?
		WHERE state = 'hunting' AND id IN (SELECT ioc_id FROM hunt_iocs WHERE hunt_id = ?)
		AND NOT EXISTS (SELECT 1 FROM hunt_iocs hi JOIN hunts h ON h.id = hi.hunt_id
			WHERE hi.ioc_id = iocs.id AND h.state IN ('planned','created','running'))`, tx.nowMS(), id)
	if err != nil {
		return false, nil, fmt.Errorf("end hunt %d: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT ioc_id FROM hunt_iocs WHERE hunt_id = ?`, id)
	if err != nil {
		return false, nil, fmt.Errorf("end hunt %d: %w", id, err)
	}
	defer rows.Close()
	var iocs []int64
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return false, nil, fmt.Errorf("end hunt %d: %w", id, err)
		}
		iocs = append(iocs, i)
	}
	return n == 1, iocs, rows.Err()
}

// Client is a Velociraptor client as cached.
type Client struct {
	Server, Org, ClientID               string
	Hostname, FQDN, OS, Release, LastIP string
}

// FindClient returns a cached client, or ENOTFOUND.
func (db *DB) FindClient(ctx context.Context, server, org, id string) (Client, error) {
	c := Client{Server: server, Org: org, ClientID: id}
	err := db.db.QueryRowContext(ctx, `SELECT hostname, fqdn, os, release, last_ip FROM clients
		WHERE server = ? AND org = ? AND client_id = ?`, server, org, id).Scan(&c.Hostname, &c.FQDN, &c.OS, &c.Release, &c.LastIP)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ioc.Errorf(ioc.ENOTFOUND, "client %s not cached", id)
	}
	return c, err
}

// SaveClient caches a client's description.
func (db *DB) SaveClient(ctx context.Context, c Client) error {
	return db.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO clients (server, org, client_id, hostname, fqdn, os, release, last_ip, fetched_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server, org, client_id) DO UPDATE SET hostname = excluded.hostname,
			fqdn = excluded.fqdn, os = excluded.os, release = excluded.release, last_ip = excluded.last_ip, fetched_at = excluded.fetched_at`,
			c.Server, c.Org, c.ClientID, c.Hostname, c.FQDN, c.OS, c.Release, c.LastIP, tx.nowMS())
		if err != nil {
			return fmt.Errorf("save client %s: %w", c.ClientID, err)
		}
		return nil
	})
}

// HitInput is a match read from a hunt's results.
type HitInput struct {
	IOCID       int64 // store IOC row
	CaseID      int64
	ClientID    string
	EvidenceKey string
	Evidence    string
	Source      string
	EventTime   time.Time
	Row         []byte
}

// RecordHits stores the hits of a batch of result rows and queues their IRIS
// writes (asset and link, timeline event), and moves the hunt's results
// cursor, all in one transaction: a crash either keeps all of it or none, and
// the rows are read again. Hits already known (same IOC, client and
// evidence) are counted as seen again and queue nothing. eventPerHost makes
// one event per (IOC, client) instead of one per hit. It returns the number
// of new hits.
//
// cur is the flow the rows were read from, with the count of its rows
// processed; a zero cursor (no client id) moves none.
func (db *DB) RecordHits(ctx context.Context, h Hunt, hits []HitInput, cur FlowCursor, eventPerHost bool) (int, error) {
	fresh, err := db.RecordNewHits(ctx, h, hits, cur, eventPerHost)
	return len(fresh), err
}

// NewHit names a hit recorded for the first time, for the log: never the
// row or the evidence.
type NewHit struct {
	HitID    int64
	CaseID   int64
	IRISIOC  int64 // the IRIS IOC id
	Server   string
	ClientID string
	Hostname string // "" when the client is not known yet
}

// RecordNewHits is RecordHits returning the new hits.
func (db *DB) RecordNewHits(ctx context.Context, h Hunt, hits []HitInput, cur FlowCursor, eventPerHost bool) ([]NewHit, error) {
	var fresh []NewHit
	err := db.tx(ctx, func(tx *Tx) error {
		fresh = fresh[:0]
		for _, x := range hits {
			var et sql.NullInt64
			if !x.EventTime.IsZero() {
				et = sql.NullInt64{Int64: x.EventTime.UnixMilli(), Valid: true}
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO hits (ioc_id, hunt_id, server, org, client_id, evidence_key, evidence,
				source, event_time, row_json, created_at, last_seen_at, collect_pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (ioc_id, client_id, evidence_key) DO NOTHING`,
				x.IOCID, h.ID, h.Server, h.Org, x.ClientID, x.EvidenceKey, x.Evidence, x.Source, et, x.Row, tx.nowMS(), tx.nowMS(), db.CollectHits)
			if err != nil {
				return fmt.Errorf("record hit: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				if _, err := tx.ExecContext(ctx, `UPDATE hits SET seen_count = seen_count + 1, last_seen_at = ?
					WHERE ioc_id = ? AND client_id = ? AND evidence_key = ?`, tx.nowMS(), x.IOCID, x.ClientID, x.EvidenceKey); err != nil {
					return fmt.Errorf("record hit: %w", err)
				}
				continue
			}
			hitID, err := res.LastInsertId()
			if err != nil {
				return err
			}
			nh := NewHit{HitID: hitID, CaseID: x.CaseID, Server: h.Server, ClientID: x.ClientID}
			if err := tx.QueryRowContext(ctx, `SELECT i.iris_id, COALESCE((SELECT hostname FROM clients c WHERE c.server = ? AND c.org = ?
				AND c.client_id = ?), '') FROM iocs i WHERE i.id = ?`, h.Server, h.Org, x.ClientID, x.IOCID).Scan(&nh.IRISIOC, &nh.Hostname); err != nil {
				return fmt.Errorf("record hit: %w", err)
			}
			fresh = append(fresh, nh)
			assetKey := fmt.Sprintf("asset:%d:%s:%s:%d", x.CaseID, h.Server, x.ClientID, x.IOCID)
			if err := tx.enqueue(ctx, "asset", x.CaseID, x.IOCID, hitID, assetKey); err != nil {
				return err
			}
			eventKey := fmt.Sprintf("event:%d", hitID)
			if eventPerHost {
				eventKey = fmt.Sprintf("event:%d:%s:%s", x.IOCID, h.Server, x.ClientID)
			}
			if err := tx.enqueue(ctx, "event", x.CaseID, x.IOCID, hitID, eventKey); err != nil {
				return err
			}
		}
		if cur.ClientID == "" {
			return nil
		}
		return tx.moveFlowCursor(ctx, h.ID, cur)
	})
	if err != nil {
		return nil, err
	}
	return fresh, nil
}

// enqueue adds an outbox row unless one with the same dedup key exists.
func (tx *Tx) enqueue(ctx context.Context, kind string, caseID, iocID, hitID int64, dedup string) error {
	marker, err := randomMarker()
	if err != nil {
		return err
	}
	var hit sql.NullInt64
	if hitID != 0 {
		hit = sql.NullInt64{Int64: hitID, Valid: true}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO outbox (kind, case_id, ioc_id, hit_id, dedup, marker, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, kind, caseID, iocID, hit, dedup, marker, tx.nowMS())
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", kind, err)
	}
	return nil
}

// randomMarker returns the tag written into an IRIS object.
func randomMarker() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("marker: %w", err)
	}
	return "vh-" + hex.EncodeToString(b), nil
}
