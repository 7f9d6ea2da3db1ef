package store

import (
	"context"
	"fmt"
	"strings"
)

// Coverage is what one source of an artifact searched on a host, as the
// artifact reports it: Searched counts Unit (files, connections...), and
// Problem says what it could not do ("" when nothing).
type Coverage struct {
	Source   string
	Unit     string
	Searched int64
	Problem  string
}

// Gap says why a source's coverage does not make a host clean, or "".
func (c Coverage) Gap() string {
	switch {
	case c.Problem != "":
		return c.Problem
	case c.Searched <= 0:
		return "searched nothing"
	}
	return ""
}

// RecordCoverage stores the coverage a flow reported. Re-reading the same
// rows stores the same values.
func (db *DB) RecordCoverage(ctx context.Context, huntID int64, clientID, flowID string, cov []Coverage) error {
	if len(cov) == 0 {
		return nil
	}
	return db.tx(ctx, func(tx *Tx) error {
		for _, c := range cov {
			if _, err := tx.ExecContext(ctx, `INSERT INTO flow_coverage (hunt_id, client_id, flow_id, source, unit, searched, problem)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hunt_id, client_id, flow_id, source) DO UPDATE SET unit = excluded.unit,
				searched = excluded.searched, problem = excluded.problem`,
				huntID, clientID, flowID, clipText(c.Source, 64), clipText(c.Unit, 64), c.Searched, clipText(c.Problem, 300)); err != nil {
				return fmt.Errorf("record coverage: %w", err)
			}
		}
		return nil
	})
}

// unreportedFlow holds for a row f of hunt_flows (joined with its hunt h)
// that is a finished flow of velohunt's own artifact, read to its end,
// that reported no coverage.
const unreportedFlow = `f.state = 'FINISHED' AND f.rows_read >= f.total_rows AND h.expects_coverage = 1 AND h.artifact LIKE 'Custom.Velohunt.%'
	AND NOT EXISTS (SELECT 1 FROM flow_coverage c WHERE c.hunt_id = f.hunt_id AND c.client_id = f.client_id AND c.flow_id = f.flow_id)`

// gapFlow holds for a row c of flow_coverage (joined with its flow f) of a
// source that fell short in its client's newest flow.
const gapFlow = `(c.searched <= 0 OR c.problem != '') AND ` + isNewestFlow

// HostGap is a host of a hunt that velohunt cannot call searched.
type HostGap struct {
	ClientID string
	Hostname string
	// Gaps are "source: why", one per source that falls short; "no
	// coverage reported" for a finished flow of velohunt's artifact that
	// reported none.
	Gaps []string
}

// Host names the host: its hostname, else its client id.
func (g HostGap) Host() string {
	if g.Hostname != "" {
		return g.Hostname
	}
	return g.ClientID
}

// String is "host: source: why; ...".
func (g HostGap) String() string { return g.Host() + ": " + strings.Join(g.Gaps, "; ") }

// coverageGaps returns the hosts of a hunt whose current flow fell short:
// a source that searched nothing or reported a problem, or, for velohunt's
// own artifacts, a finished flow read to its end that reported nothing.
func (db *DB) coverageGaps(ctx context.Context, huntID int64) ([]HostGap, error) {
	rows, err := db.db.QueryContext(ctx, `
		SELECT c.client_id, COALESCE(cl.hostname, ''), c.source, c.searched, c.problem
		FROM flow_coverage c
		JOIN hunt_flows f ON f.hunt_id = c.hunt_id AND f.client_id = c.client_id AND f.flow_id = c.flow_id
		JOIN hunts h ON h.id = c.hunt_id
		LEFT JOIN clients cl ON cl.server = h.server AND cl.org = h.org AND cl.client_id = c.client_id
		WHERE c.hunt_id = ? AND (c.searched <= 0 OR c.problem != '') AND `+isNewestFlow+`
		UNION ALL
		SELECT f.client_id, COALESCE(cl.hostname, ''), '', -1, 'no coverage reported'
		FROM hunt_flows f JOIN hunts h ON h.id = f.hunt_id
		LEFT JOIN clients cl ON cl.server = h.server AND cl.org = h.org AND cl.client_id = f.client_id
		WHERE f.hunt_id = ? AND `+unreportedFlow+` AND `+isNewestFlow+`
		ORDER BY 1, 3`, huntID, huntID)
	if err != nil {
		return nil, fmt.Errorf("coverage gaps: %w", err)
	}
	defer rows.Close()
	var out []HostGap
	for rows.Next() {
		var g HostGap
		var c Coverage
		if err := rows.Scan(&g.ClientID, &g.Hostname, &c.Source, &c.Searched, &c.Problem); err != nil {
			return nil, fmt.Errorf("coverage gaps: %w", err)
		}
		why := c.Gap()
		if c.Source != "" {
			why = c.Source + ": " + why
		}
		if n := len(out); n > 0 && out[n-1].ClientID == g.ClientID {
			out[n-1].Gaps = append(out[n-1].Gaps, why)
			continue
		}
		g.Gaps = []string{why}
		out = append(out, g)
	}
	return out, rows.Err()
}
