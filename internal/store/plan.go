package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// IOCCount counts the (case, IOC) rows of open cases routed to one server
// and org, of one kind, in one state.
type IOCCount struct {
	Route ioc.Route
	Kind  ioc.Kind // "" for refused rows
	State string
	Rows  int // (case, IOC) rows
	// Values counts the distinct values hunted (the hunts' list size).
	Values int
}

// IOCCounts counts the IOC rows of open cases by route, kind and state.
func (db *DB) IOCCounts(ctx context.Context) ([]IOCCount, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT c.server, c.org, i.kind, i.state, COUNT(*), COUNT(DISTINCT i.hunt_value)
		FROM iocs i JOIN cases c ON c.case_id = i.case_id WHERE c.is_open = 1
		GROUP BY c.server, c.org, i.kind, i.state ORDER BY c.server, c.org, i.kind, i.state`)
	if err != nil {
		return nil, fmt.Errorf("ioc counts: %w", err)
	}
	defer rows.Close()
	var out []IOCCount
	for rows.Next() {
		var c IOCCount
		var kind string
		if err := rows.Scan(&c.Route.Server, &c.Route.Org, &kind, &c.State, &c.Rows, &c.Values); err != nil {
			return nil, fmt.Errorf("ioc counts: %w", err)
		}
		c.Kind = ioc.Kind(kind)
		out = append(out, c)
	}
	return out, rows.Err()
}

// OpenCases returns the open cases with their routes, by id.
func (db *DB) OpenCases(ctx context.Context) ([]Case, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+caseColumns+` FROM cases WHERE is_open = 1 ORDER BY case_id`)
	if err != nil {
		return nil, fmt.Errorf("open cases: %w", err)
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		c, err := scanCase(rows)
		if err != nil {
			return nil, fmt.Errorf("open cases: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const caseColumns = `case_id, name, customer, tags, is_open, server, org, ioc_state, state_name, scope, no_collect`

func scanCase(s interface{ Scan(...any) error }) (Case, error) {
	var c Case
	var tags string
	if err := s.Scan(&c.ID, &c.Name, &c.Customer, &tags, &c.Open, &c.Route.Server, &c.Route.Org, &c.IOCState, &c.State, &c.Route.Scope, &c.Route.NoCollect); err != nil {
		return c, err
	}
	if tags != "" {
		c.Tags = strings.Split(tags, ",")
	}
	return c, nil
}

// HuntCover returns, for each IOC row an active (planned, created or
// running) hunt covers, when the last of those hunts expires: until then
// the row is "hunting", and a re-hunt rule without overlap leaves it be.
func (db *DB) HuntCover(ctx context.Context) (map[int64]time.Time, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT hi.ioc_id, MAX(h.expires_at) FROM hunt_iocs hi JOIN hunts h ON h.id = hi.hunt_id
		WHERE h.state IN ('planned','created','running') GROUP BY hi.ioc_id`)
	if err != nil {
		return nil, fmt.Errorf("hunt cover: %w", err)
	}
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var until sql.NullInt64
		if err := rows.Scan(&id, &until); err != nil {
			return nil, fmt.Errorf("hunt cover: %w", err)
		}
		out[id] = msToTime(until)
	}
	return out, rows.Err()
}
