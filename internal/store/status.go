package store

import (
	"context"
	"fmt"
)

// Stats is a summary of the store for `velohunt status`.
type Stats struct {
	OpenCases int
	// IOCs counts IOC rows by state, with StateHit for the hunting and
	// hunted rows that hit: `velohunt status` and the velohunt_iocs gauge
	// both read it.
	IOCs       map[string]int
	Hunts      map[string]int // by state
	InboxDepth int
	// IncompleteHunts counts hunts in which at least one host's collection
	// ended in error or timed out, could not search everything its
	// artifact applies to it, or never reported before the hunt ended:
	// none of them reads as clean.
	IncompleteHunts int
	// Gaps counts, by source, the hosts of running hunts where that source
	// searched nothing or reported a problem.
	Gaps map[string]int
}

// Stats counts cases, IOCs by state, hunts by state and pending events.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	s := Stats{IOCs: map[string]int{}, Hunts: map[string]int{}, Gaps: map[string]int{}}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM cases WHERE is_open = 1`).Scan(&s.OpenCases); err != nil {
		return s, fmt.Errorf("stats: %w", err)
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hunts h WHERE errored > 0 OR EXISTS (
		SELECT 1 FROM flow_coverage c JOIN hunt_flows f ON f.hunt_id = c.hunt_id AND f.client_id = c.client_id AND f.flow_id = c.flow_id
		WHERE c.hunt_id = h.id AND `+gapFlow+`) OR EXISTS (
		SELECT 1 FROM hunt_flows f WHERE f.hunt_id = h.id AND `+unreportedFlow+` AND `+isNewestFlow+`)
		OR (h.state IN ('finished','stopped','expired') AND h.finished < h.scheduled)`).Scan(&s.IncompleteHunts); err != nil {
		return s, fmt.Errorf("stats: %w", err)
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM inbox`).Scan(&s.InboxDepth); err != nil {
		return s, fmt.Errorf("stats: %w", err)
	}
	if err := db.countBy(ctx, `SELECT CASE WHEN state IN ('hunting','hunted') AND EXISTS (SELECT 1 FROM hits h WHERE h.ioc_id = iocs.id)
		THEN 'hit' ELSE state END, COUNT(*) FROM iocs GROUP BY 1`, s.IOCs); err != nil {
		return s, err
	}
	if err := db.countBy(ctx, `SELECT state, COUNT(*) FROM hunts GROUP BY state`, s.Hunts); err != nil {
		return s, err
	}
	if err := db.countBy(ctx, `SELECT c.source, COUNT(*) FROM flow_coverage c
		JOIN hunt_flows f ON f.hunt_id = c.hunt_id AND f.client_id = c.client_id AND f.flow_id = c.flow_id
		JOIN hunts h ON h.id = c.hunt_id
		WHERE h.state = 'running' AND `+gapFlow+` GROUP BY c.source`, s.Gaps); err != nil {
		return s, err
	}
	return s, nil
}

func (db *DB) countBy(ctx context.Context, q string, into map[string]int) error {
	rows, err := db.db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
		into[k] = n
	}
	return rows.Err()
}

// FailingLaunches returns hunts whose launch failed at least once and that
// have not started yet.
func (db *DB) FailingLaunches(ctx context.Context, limit int) ([]Hunt, error) {
	return db.queryHunts(ctx, `WHERE state IN ('planned','created') AND last_error != '' ORDER BY id LIMIT ?`, limit)
}
