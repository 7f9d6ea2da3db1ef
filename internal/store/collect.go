package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Collection states.
const (
	CollectQueued    = "queued"
	CollectHeld      = "held"
	CollectLaunching = "launching"
	CollectRunning   = "running"
	CollectDone      = "collected"
	CollectFailed    = "failed"
)

// CollectHit is a new hit the collector has not decided on.
type CollectHit struct {
	HitID, IOCID, CaseID int64
	Kind                 ioc.Kind
	Server, Org          string
	ClientID             string
	Evidence, Source     string
	EvidenceKey          string
	Row                  []byte // the hunt's row, clipped
	// NoCollect: the case's routing rule turns collections off.
	NoCollect bool
	CaseOpen  bool
	Created   time.Time
}

// PendingCollectHits returns up to limit hits waiting for the collector's
// decision, oldest first.
func (db *DB) PendingCollectHits(ctx context.Context, limit int) ([]CollectHit, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT h.id, h.ioc_id, i.case_id, i.kind, h.server, h.org, h.client_id, h.evidence,
		h.source, h.evidence_key, h.row_json, COALESCE(c.no_collect, 0), COALESCE(c.is_open, 0), h.created_at
		FROM hits h JOIN iocs i ON i.id = h.ioc_id LEFT JOIN cases c ON c.case_id = i.case_id
		WHERE h.collect_pending = 1 ORDER BY h.id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("pending collections: %w", err)
	}
	defer rows.Close()
	var out []CollectHit
	for rows.Next() {
		var h CollectHit
		var created int64
		if err := rows.Scan(&h.HitID, &h.IOCID, &h.CaseID, &h.Kind, &h.Server, &h.Org, &h.ClientID, &h.Evidence, &h.Source,
			&h.EvidenceKey, &h.Row, &h.NoCollect, &h.CaseOpen, &created); err != nil {
			return nil, fmt.Errorf("pending collections: %w", err)
		}
		h.Created = time.UnixMilli(created).UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}

// NewCollection is what a hit collects from its client.
type NewCollection struct {
	// Target makes the collection one per client: "file:" + path, or the
	// hit's evidence key when only artifacts are collected.
	Target    string
	Path      string
	Artifacts string // JSON
	MaxBytes  int64
	// Expect is the hash the hunt found ("sha256:<hex>" or "md5:<hex>"):
	// a collected file with another is not the hit's.
	Expect string
}

// DecideCollect records the collector's decision on a hit: nil collects
// nothing; otherwise the hit is linked to the client's collection of the
// target, made queued when there is none. A hit linked to a collection
// that already ended has its IRIS records queued at once. It returns the
// collection's id (0 for none) and whether it was made.
func (db *DB) DecideCollect(ctx context.Context, hitID int64, nc *NewCollection) (id int64, made bool, err error) {
	err = db.tx(ctx, func(tx *Tx) error {
		id, made = 0, false
		if nc == nil {
			_, err := tx.ExecContext(ctx, `UPDATE hits SET collect_pending = 0 WHERE id = ?`, hitID)
			return err
		}
		var server, org, client string
		var iocID, created int64
		if err := tx.QueryRowContext(ctx, `SELECT server, org, client_id, ioc_id, created_at FROM hits WHERE id = ?`, hitID).
			Scan(&server, &org, &client, &iocID, &created); err != nil {
			return fmt.Errorf("decide collection of hit %d: %w", hitID, err)
		}
		// A collection that ended before this hit was found is not its
		// evidence (the file at that path may be another one by now, or
		// the hit another case's): it keeps its records under a retired
		// target, and the hit gets a collection of its own.
		// Live targets start "file:" or "hit:": a retired one never takes
		// a live one's name, whatever the path (a file named "x#12").
		if _, err := tx.ExecContext(ctx, `UPDATE collections SET target = 'retired:' || id || ':' || target WHERE server = ? AND org = ?
			AND client_id = ? AND target = ? AND state IN ('collected','failed') AND ended_at < ?`,
			server, org, client, nc.Target, created); err != nil {
			return fmt.Errorf("decide collection of hit %d: %w", hitID, err)
		}
		marker, err := randomMarker()
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO collections (server, org, client_id, target, path, artifacts, max_bytes, expect, marker,
			state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT (server, org, client_id, target) DO NOTHING`,
			server, org, client, nc.Target, nc.Path, nc.Artifacts, nc.MaxBytes, nc.Expect, marker, tx.nowMS())
		if err != nil {
			return fmt.Errorf("decide collection of hit %d: %w", hitID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			made = true
		}
		var state string
		if err := tx.QueryRowContext(ctx, `SELECT id, state FROM collections WHERE server = ? AND org = ? AND client_id = ? AND target = ?`,
			server, org, client, nc.Target).Scan(&id, &state); err != nil {
			return fmt.Errorf("decide collection of hit %d: %w", hitID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE hits SET collect_pending = 0, collection_id = ? WHERE id = ?`, id, hitID); err != nil {
			return fmt.Errorf("decide collection of hit %d: %w", hitID, err)
		}
		if state == CollectDone || state == CollectFailed {
			return tx.enqueueCollected(ctx, id, hitID)
		}
		return tx.enqueueTab(ctx, iocID)
	})
	return id, made, err
}

// Collection is a follow-up collection as stored.
type Collection struct {
	ID                      int64
	Server, Org, ClientID   string
	Target, Path, Artifacts string
	MaxBytes                int64
	Expect                  string
	Marker                  string
	State, Reason           string
	FlowID                  string
	Attempts                int
	FlowState               string
	FilePath                string
	FileSize                int64
	SHA256, MD5             string
	Uploaded, Reserved      int64
	Created, Launched       time.Time
	Ended, NextAt           time.Time
	// Wanted: the collection still serves a hit of an open case whose
	// route allows collections.
	Wanted bool
}

// collectionColumns are read FROM collections; the last says whether the
// collection still serves a hit of an open case whose route allows
// collections (a case closed, its IOC removed, or turned to collect: false
// since its hit was found wants none).
const collectionColumns = `id, server, org, client_id, target, path, artifacts, max_bytes, expect, marker, state, reason, flow_id, attempts,
	flow_state, file_path, file_size, sha256, md5, uploaded, reserved, created_at, launched_at, ended_at, next_at,
	EXISTS (SELECT 1 FROM hits h JOIN iocs i ON i.id = h.ioc_id JOIN cases c ON c.case_id = i.case_id
		WHERE h.collection_id = collections.id AND c.is_open = 1 AND c.no_collect = 0 AND i.state != 'removed')`

func scanCollection(s interface{ Scan(...any) error }) (Collection, error) {
	var c Collection
	var created, launched, ended, next int64
	err := s.Scan(&c.ID, &c.Server, &c.Org, &c.ClientID, &c.Target, &c.Path, &c.Artifacts, &c.MaxBytes, &c.Expect, &c.Marker, &c.State, &c.Reason,
		&c.FlowID, &c.Attempts, &c.FlowState, &c.FilePath, &c.FileSize, &c.SHA256, &c.MD5, &c.Uploaded, &c.Reserved,
		&created, &launched, &ended, &next, &c.Wanted)
	c.Created, c.Launched, c.Ended, c.NextAt = msOrZero(created), msOrZero(launched), msOrZero(ended), msOrZero(next)
	return c, err
}

func msOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// LiveCollections returns the collections not ended, oldest first.
func (db *DB) LiveCollections(ctx context.Context) ([]Collection, error) {
	return db.queryCollections(ctx, `WHERE state NOT IN ('collected','failed') ORDER BY id`)
}

// FindCollection returns a collection, or ENOTFOUND.
func (db *DB) FindCollection(ctx context.Context, id int64) (Collection, error) {
	c, err := scanCollection(db.db.QueryRowContext(ctx, `SELECT `+collectionColumns+` FROM collections WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ioc.Errorf(ioc.ENOTFOUND, "collection %d not found", id)
	} else if err != nil {
		return c, fmt.Errorf("collection %d: %w", id, err)
	}
	return c, nil
}

// Collections returns the newest collections, up to limit (status).
func (db *DB) Collections(ctx context.Context, limit int) ([]Collection, error) {
	return db.queryCollections(ctx, `ORDER BY id DESC LIMIT ?`, limit)
}

func (db *DB) queryCollections(ctx context.Context, where string, args ...any) ([]Collection, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+collectionColumns+` FROM collections `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("collections: %w", err)
	}
	defer rows.Close()
	var out []Collection
	for rows.Next() {
		c, err := scanCollection(rows)
		if err != nil {
			return nil, fmt.Errorf("collections: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CollectUsage is what a server's collections used, for its limits.
type CollectUsage struct {
	InFlight int            // launching or running
	PerHost  map[string]int // client (org/client id) → collections launched since
	Bytes    int64          // bytes reserved or uploaded by collections launched since
}

// CollectUsage counts a server's collections in flight, and those launched
// since the given time per client and in bytes.
func (db *DB) CollectUsage(ctx context.Context, server string, since time.Time) (CollectUsage, error) {
	u := CollectUsage{PerHost: map[string]int{}}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM collections WHERE server = ? AND state IN ('launching','running')`,
		server).Scan(&u.InFlight); err != nil {
		return u, fmt.Errorf("collection usage: %w", err)
	}
	rows, err := db.db.QueryContext(ctx, `SELECT org || '/' || client_id, COUNT(*), SUM(MAX(reserved, uploaded)) FROM collections
		WHERE server = ? AND launched_at >= ? GROUP BY org, client_id`, server, since.UnixMilli())
	if err != nil {
		return u, fmt.Errorf("collection usage: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var host string
		var n int
		var bytes int64
		if err := rows.Scan(&host, &n, &bytes); err != nil {
			return u, fmt.Errorf("collection usage: %w", err)
		}
		u.PerHost[host] = n
		u.Bytes += bytes
	}
	return u, rows.Err()
}

// HoldCollection keeps a queued collection back with the limit that holds
// it; the IOCs' tabs show it when the reason changes.
func (db *DB) HoldCollection(ctx context.Context, id int64, reason string) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE collections SET state = 'held', reason = ? WHERE id = ? AND state IN ('queued','held')
			AND NOT (state = 'held' AND reason = ?)`, reason, id, reason)
		if err != nil {
			return fmt.Errorf("hold collection %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return tx.enqueueCollectionTabs(ctx, id)
	})
}

// BeginCollectionLaunch records that the collection is being asked for,
// with the bytes it reserves of the day's budget, before Velociraptor is
// called: a crash before the flow id is recorded is known, and the flow is
// then looked up by the collection's marker.
func (db *DB) BeginCollectionLaunch(ctx context.Context, id, reserved int64) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE collections SET state = 'launching', reason = '', attempts = attempts + 1,
			launched_at = ?, reserved = ? WHERE id = ?`, tx.nowMS(), reserved, id); err != nil {
			return fmt.Errorf("launch collection %d: %w", id, err)
		}
		return tx.enqueueCollectionTabs(ctx, id)
	})
}

// CollectionLaunched records the collection's flow.
func (db *DB) CollectionLaunched(ctx context.Context, id int64, flowID string) error {
	return db.exec(ctx, `UPDATE collections SET state = 'running', flow_id = ?, next_at = 0 WHERE id = ?`, flowID, id)
}

// RetryCollection puts a collection back in the queue until next, with
// why its launch failed; it counts against no limit meanwhile.
func (db *DB) RetryCollection(ctx context.Context, id int64, reason string, next time.Time) error {
	return db.exec(ctx, `UPDATE collections SET state = 'queued', reason = ?, next_at = ?, launched_at = 0, reserved = 0 WHERE id = ?`,
		reason, next.UnixMilli(), id)
}

// DeferCollection keeps a launching collection whose request failed in a
// way that may have made its flow (an answer lost) until next, with why;
// its flow is then looked up by marker before it is asked for again.
func (db *DB) DeferCollection(ctx context.Context, id int64, reason string, next time.Time) error {
	return db.exec(ctx, `UPDATE collections SET reason = ?, next_at = ? WHERE id = ? AND state = 'launching'`, reason, next.UnixMilli(), id)
}

// SetCollectionFlowState records the flow's state as last read.
func (db *DB) SetCollectionFlowState(ctx context.Context, id int64, state string) error {
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE collections SET flow_state = ? WHERE id = ? AND flow_state != ?`, state, id, state)
		if err != nil {
			return fmt.Errorf("collection %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return tx.enqueueCollectionTabs(ctx, id)
	})
}

// CollectionResult is how a collection ended.
type CollectionResult struct {
	State    string // CollectDone or CollectFailed
	Reason   string // why it failed, or what to know of what was collected
	FilePath string
	FileSize int64
	SHA256   string
	MD5      string
	Uploaded int64
}

// EndCollection records how a collection ended and, in the same
// transaction, queues its IRIS records: an evidence per case of its hits
// (when something was collected) and a "collected" event per hit, and the
// tabs of their IOCs. A collection already ended is left as it is.
func (db *DB) EndCollection(ctx context.Context, id int64, r CollectionResult) error {
	if r.State != CollectDone && r.State != CollectFailed {
		return fmt.Errorf("end collection %d: state %q", id, r.State)
	}
	return db.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE collections SET state = ?, reason = ?, file_path = ?, file_size = ?, sha256 = ?, md5 = ?,
			uploaded = ?, reserved = 0, ended_at = ? WHERE id = ? AND state NOT IN ('collected','failed')`,
			r.State, r.Reason, r.FilePath, r.FileSize, r.SHA256, r.MD5, r.Uploaded, tx.nowMS(), id)
		if err != nil {
			return fmt.Errorf("end collection %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		hits, err := queryIDs(ctx, tx, fmt.Sprintf("end collection %d", id), `SELECT id FROM hits WHERE collection_id = ? ORDER BY id`, id)
		if err != nil {
			return err
		}
		for _, h := range hits {
			if err := tx.enqueueCollected(ctx, id, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// enqueueCollected queues the IRIS records of an ended collection for one
// of its hits: its "collected" event, the evidence of the hit's case (once
// per case), and the IOC's tab.
func (tx *Tx) enqueueCollected(ctx context.Context, collectionID, hitID int64) error {
	var caseID, iocID int64
	var state string
	if err := tx.QueryRowContext(ctx, `SELECT i.case_id, h.ioc_id, c.state FROM hits h JOIN iocs i ON i.id = h.ioc_id
		JOIN collections c ON c.id = h.collection_id WHERE h.id = ? AND c.id = ?`, hitID, collectionID).Scan(&caseID, &iocID, &state); err != nil {
		return fmt.Errorf("queue collection records of hit %d: %w", hitID, err)
	}
	if state == CollectDone {
		if err := tx.enqueue(ctx, "evidence", caseID, iocID, hitID, fmt.Sprintf("evidence:%d:%d", caseID, collectionID)); err != nil {
			return err
		}
	}
	if err := tx.enqueue(ctx, "collected", caseID, iocID, hitID, fmt.Sprintf("collected:%d", hitID)); err != nil {
		return err
	}
	return tx.enqueueTab(ctx, iocID)
}

// enqueueCollectionTabs queues the tabs of the IOCs whose hits a
// collection serves.
func (tx *Tx) enqueueCollectionTabs(ctx context.Context, id int64) error {
	iocs, err := queryIDs(ctx, tx, fmt.Sprintf("collection %d tabs", id), `SELECT DISTINCT ioc_id FROM hits WHERE collection_id = ?`, id)
	if err != nil {
		return err
	}
	for _, i := range iocs {
		if err := tx.enqueueTab(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// HitCollection returns the collection a hit is linked to, or ENOTFOUND.
func (db *DB) HitCollection(ctx context.Context, hitID int64) (Collection, error) {
	c, err := scanCollection(db.db.QueryRowContext(ctx, `SELECT `+collectionColumns+` FROM collections
		WHERE id = (SELECT collection_id FROM hits WHERE id = ?)`, hitID))
	if errors.Is(err, sql.ErrNoRows) {
		return c, ioc.Errorf(ioc.ENOTFOUND, "hit %d has no collection", hitID)
	} else if err != nil {
		return c, fmt.Errorf("collection of hit %d: %w", hitID, err)
	}
	return c, nil
}
