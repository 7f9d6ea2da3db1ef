package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Events of the IOC log (table ioc_log): what the IOC rows themselves do
// not keep.
const (
	LogLearned    = "learned"      // a new (case, IOC) row; detail: validation
	LogChanged    = "changed"      // value or type changed, or back in its case
	LogRequeued   = "requeued"     // queued again (manual trigger, hunt command, re-hunt rule)
	LogRemoved    = "removed"      // unlinked or deleted in IRIS, or its case closed
	LogParked     = "write_parked" // IRIS refused a write; source: its kind
	LogTabWritten = "tab_written"  // the IRIS IOC's tab was written; detail: its status
)

// logIOC appends an event of an IOC row to the IOC log.
func (tx *Tx) logIOC(ctx context.Context, iocID int64, event, source, detail string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO ioc_log (iris_id, ioc_id, at, event, source, detail)
		SELECT iris_id, id, ?, ?, ?, ? FROM iocs WHERE id = ?`, tx.nowMS(), event, source, clipText(detail, 1000), iocID); err != nil {
		return fmt.Errorf("log ioc %d: %w", iocID, err)
	}
	return nil
}

// validation says what validation made of an IOC.
func validation(in IOCInput) string {
	if in.Reason != "" {
		return "refused: " + in.Reason
	}
	return fmt.Sprintf("valid: hunted as %s %q", in.Target.Kind, clipText(in.Target.Value, 200))
}

// LogEntry is one event of the IOC log.
type LogEntry struct {
	At     time.Time
	Event  string // one of the Log* constants
	Source string
	Detail string
}

// History is what velohunt knows and did about one (case, IOC) row, for
// `velohunt status -ioc` and `-case`. Lists are capped at the limit given
// to the call; the counts say how many there are.
type History struct {
	IOC  IOC
	Case Case
	// Log holds the row's events and the tab writes of its IRIS IOC (one
	// tab for every case), oldest first.
	Log   []LogEntry
	Hunts []HistoryHunt // oldest first
	// Hits are the newest hits, oldest first; HitCount and HostCount count
	// them all, FirstHit is when the first was recorded.
	Hits                []HistoryHit
	HitCount, HostCount int
	FirstHit            time.Time
	// Writes are the row's IRIS writes still in the outbox (asset and
	// event writes stay there once done; done tab writes are in Log),
	// oldest first, the pending and parked ones kept first under the cap.
	Writes     []HistoryWrite
	WriteCount int
	// TabWritten is when the IRIS IOC's tab was last written (zero:
	// never), by whichever case.
	TabWritten time.Time
}

// HistoryHunt is a hunt with its progress and the flows of its hosts.
type HistoryHunt struct {
	Hunt
	Progress
	HuntValue string // the value this IOC was hunted with
	IOCs      int    // IOC rows the hunt covers
	// Flows are up to the limit of the hunt's flows, the ones that errored
	// or did not search everything first; FlowCount counts them all.
	Flows     []HistoryFlow
	FlowCount int
}

// HistoryFlow is one client's flow of a hunt.
type HistoryFlow struct {
	ClientID, Hostname, FlowID string
	State, Status              string // Velociraptor's; Status is the error of an ERROR flow
	TotalRows, RowsRead        int64
	Created                    time.Time // the flow's create time in Velociraptor
	Updated                    time.Time // when velohunt last read it
	// Gaps are the sources that fell short in it ("source: why"), for a
	// client's newest flow.
	Gaps []string
}

// Host names the flow's host: its hostname, else its client id.
func (f HistoryFlow) Host() string {
	if f.Hostname != "" {
		return f.Hostname
	}
	return f.ClientID
}

// HistoryHit is a hit of the IOC row.
type HistoryHit struct {
	ID, HuntID          int64
	ClientID, Hostname  string
	Evidence, Source    string
	EventTime           time.Time // the evidence's own time; zero when unknown
	FirstSeen, LastSeen time.Time
	SeenCount           int
	Server, Org         string
}

// HistoryWrite is one write to IRIS of the IOC row.
type HistoryWrite struct {
	ID                 int64
	Kind               string // asset, event, tab
	HitID              int64
	ClientID, Hostname string
	Created, Done      time.Time
	NextAttempt        time.Time
	Attempts           int
	LastError          string
	Parked             bool
	IRISObject         int64 // the asset or event it made or reused
}

// IRISIOCHistory returns the history of each (case, IOC) row of an IRIS
// IOC, by case. Returns ENOTFOUND when velohunt has no row of it.
func (db *DB) IRISIOCHistory(ctx context.Context, irisID int64, limit int) ([]History, error) {
	rows, err := db.FindIOCs(ctx, irisID)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, ioc.Errorf(ioc.ENOTFOUND, "IOC %d is not known to velohunt", irisID)
	}
	out := make([]History, 0, len(rows))
	for _, r := range rows {
		h, err := db.history(ctx, r, limit, true, map[int64]HistoryHunt{})
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// CaseHistory returns a case, the history of each of its IOC rows (their
// hunts without flows) and the hunts that covered any of them, with their
// flows. Returns ENOTFOUND when velohunt never saw the case.
func (db *DB) CaseHistory(ctx context.Context, caseID int64, limit int) (Case, []History, []HistoryHunt, error) {
	c, err := db.FindCase(ctx, caseID)
	if err != nil {
		return c, nil, nil, err
	}
	rows, err := db.CaseIOCs(ctx, caseID)
	if err != nil {
		return c, nil, nil, err
	}
	// The IOCs of a case often share hunts: each hunt's progress is read
	// once.
	seen := map[int64]HistoryHunt{}
	var out []History
	for _, r := range rows {
		h, err := db.history(ctx, r, limit, false, seen)
		if err != nil {
			return c, nil, nil, err
		}
		out = append(out, h)
	}
	list, err := db.queryHunts(ctx, `WHERE id IN (SELECT hi.hunt_id FROM hunt_iocs hi JOIN iocs i ON i.id = hi.ioc_id WHERE i.case_id = ?)
		ORDER BY id`, caseID)
	if err != nil {
		return c, nil, nil, err
	}
	var hunts []HistoryHunt
	for _, h := range list {
		hh, err := db.historyHunt(ctx, h, "", limit, true)
		if err != nil {
			return c, nil, nil, err
		}
		hunts = append(hunts, hh)
	}
	return c, out, hunts, nil
}

// history reads a row's history; seen holds the hunts already read (by
// id, without a HuntValue), and gets those it reads.
func (db *DB) history(ctx context.Context, r IOC, limit int, flows bool, seen map[int64]HistoryHunt) (History, error) {
	h := History{IOC: r}
	var err error
	if h.Case, err = db.FindCase(ctx, r.CaseID); err != nil {
		return h, err
	}
	if h.Log, err = db.iocLog(ctx, r, limit); err != nil {
		return h, err
	}
	rows, err := db.db.QueryContext(ctx, `SELECT hunt_id, hunt_value FROM hunt_iocs WHERE ioc_id = ? ORDER BY hunt_id`, r.ID)
	if err != nil {
		return h, fmt.Errorf("history of ioc %d: %w", r.ID, err)
	}
	var ids []int64
	values := map[int64]string{}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			rows.Close()
			return h, fmt.Errorf("history of ioc %d: %w", r.ID, err)
		}
		ids, values[id] = append(ids, id), v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return h, fmt.Errorf("history of ioc %d: %w", r.ID, err)
	}
	for _, id := range ids {
		hh, ok := seen[id]
		if !ok {
			hunt, err := db.FindHunt(ctx, id)
			if err != nil {
				return h, err
			}
			if hh, err = db.historyHunt(ctx, hunt, "", limit, flows); err != nil {
				return h, err
			}
			seen[id] = hh
		}
		hh.HuntValue = values[id]
		h.Hunts = append(h.Hunts, hh)
	}
	if err := db.historyHits(ctx, &h, limit); err != nil {
		return h, err
	}
	if err := db.historyWrites(ctx, &h, limit); err != nil {
		return h, err
	}
	var written sql.NullInt64
	if err := db.db.QueryRowContext(ctx, `SELECT MAX(written_at) FROM tabs WHERE iris_id = ?`, r.IRISID).Scan(&written); err != nil {
		return h, fmt.Errorf("history of ioc %d: %w", r.ID, err)
	}
	h.TabWritten = msToTime(written)
	return h, nil
}

// iocLog reads the row's log and its IRIS IOC's tab writes, the newest up
// to limit, oldest first.
func (db *DB) iocLog(ctx context.Context, r IOC, limit int) ([]LogEntry, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT at, event, source, detail FROM ioc_log
		WHERE ioc_id = ? OR (ioc_id IS NULL AND iris_id = ?) ORDER BY at DESC, id DESC LIMIT ?`, r.ID, r.IRISID, limit)
	if err != nil {
		return nil, fmt.Errorf("log of ioc %d: %w", r.ID, err)
	}
	defer rows.Close()
	var out []LogEntry
	for rows.Next() {
		var e LogEntry
		var at int64
		if err := rows.Scan(&at, &e.Event, &e.Source, &e.Detail); err != nil {
			return nil, fmt.Errorf("log of ioc %d: %w", r.ID, err)
		}
		e.At = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// historyHunt adds a hunt's progress, its IOC count and, with flows, up to
// limit of its flows.
func (db *DB) historyHunt(ctx context.Context, h Hunt, value string, limit int, flows bool) (HistoryHunt, error) {
	hh := HistoryHunt{Hunt: h, HuntValue: value}
	var err error
	if hh.Progress, err = db.HuntProgress(ctx, h.ID); err != nil {
		return hh, err
	}
	if err := db.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM hunt_iocs WHERE hunt_id = ?), (SELECT COUNT(*) FROM hunt_flows WHERE hunt_id = ?)`,
		h.ID, h.ID).Scan(&hh.IOCs, &hh.FlowCount); err != nil {
		return hh, fmt.Errorf("history of hunt %d: %w", h.ID, err)
	}
	if !flows || hh.FlowCount == 0 {
		return hh, nil
	}
	// The flows an analyst must see come first under the cap: errored, or
	// that fell short of searching everything.
	rows, err := db.db.QueryContext(ctx, `
		SELECT f.client_id, COALESCE(cl.hostname, ''), f.flow_id, f.state, f.status, f.total_rows, f.rows_read, f.created_us, f.updated_at,
			`+isNewestFlow+`
		FROM hunt_flows f JOIN hunts h ON h.id = f.hunt_id
		LEFT JOIN clients cl ON cl.server = h.server AND cl.org = h.org AND cl.client_id = f.client_id
		WHERE f.hunt_id = ?
		ORDER BY (f.state = 'ERROR' OR EXISTS (SELECT 1 FROM flow_coverage c WHERE c.hunt_id = f.hunt_id AND c.client_id = f.client_id
			AND c.flow_id = f.flow_id AND (c.searched <= 0 OR c.problem != '')) OR (`+unreportedFlow+`)) DESC, f.created_us, f.rowid
		LIMIT ?`, h.ID, limit)
	if err != nil {
		return hh, fmt.Errorf("flows of hunt %d: %w", h.ID, err)
	}
	defer rows.Close()
	gaps := map[string][]string{}
	for _, g := range hh.Uncovered {
		gaps[g.ClientID] = g.Gaps
	}
	for rows.Next() {
		var f HistoryFlow
		var createdUS, updated int64
		var newest bool
		if err := rows.Scan(&f.ClientID, &f.Hostname, &f.FlowID, &f.State, &f.Status, &f.TotalRows, &f.RowsRead, &createdUS, &updated, &newest); err != nil {
			return hh, fmt.Errorf("flows of hunt %d: %w", h.ID, err)
		}
		if createdUS > 0 {
			f.Created = time.UnixMicro(createdUS).UTC()
		}
		f.Updated = time.UnixMilli(updated).UTC()
		if newest {
			f.Gaps = gaps[f.ClientID]
		}
		hh.Flows = append(hh.Flows, f)
	}
	return hh, rows.Err()
}

func (db *DB) historyHits(ctx context.Context, h *History, limit int) error {
	var first sql.NullInt64
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT server || '/' || client_id), MIN(created_at) FROM hits WHERE ioc_id = ?`,
		h.IOC.ID).Scan(&h.HitCount, &h.HostCount, &first); err != nil {
		return fmt.Errorf("hits of ioc %d: %w", h.IOC.ID, err)
	}
	h.FirstHit = msToTime(first)
	rows, err := db.db.QueryContext(ctx, `SELECT h.id, h.hunt_id, h.server, h.org, h.client_id, COALESCE(cl.hostname, ''), h.evidence, h.source,
			h.event_time, h.created_at, h.last_seen_at, h.seen_count
		FROM hits h LEFT JOIN clients cl ON cl.server = h.server AND cl.org = h.org AND cl.client_id = h.client_id
		WHERE h.ioc_id = ? ORDER BY h.id DESC LIMIT ?`, h.IOC.ID, limit)
	if err != nil {
		return fmt.Errorf("hits of ioc %d: %w", h.IOC.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var x HistoryHit
		var et sql.NullInt64
		var created, seen int64
		if err := rows.Scan(&x.ID, &x.HuntID, &x.Server, &x.Org, &x.ClientID, &x.Hostname, &x.Evidence, &x.Source, &et, &created, &seen,
			&x.SeenCount); err != nil {
			return fmt.Errorf("hits of ioc %d: %w", h.IOC.ID, err)
		}
		x.EventTime, x.FirstSeen, x.LastSeen = msToTime(et), time.UnixMilli(created).UTC(), time.UnixMilli(seen).UTC()
		h.Hits = append(h.Hits, x)
	}
	slices.Reverse(h.Hits)
	return rows.Err()
}

func (db *DB) historyWrites(ctx context.Context, h *History, limit int) error {
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE ioc_id = ?`, h.IOC.ID).Scan(&h.WriteCount); err != nil {
		return fmt.Errorf("writes of ioc %d: %w", h.IOC.ID, err)
	}
	rows, err := db.db.QueryContext(ctx, `SELECT o.id, o.kind, COALESCE(o.hit_id, 0), COALESCE(h.client_id, ''), COALESCE(cl.hostname, ''),
			o.created_at, o.done_at, o.next_attempt_at, o.attempts, o.last_error, o.parked, COALESCE(o.iris_id, 0)
		FROM outbox o LEFT JOIN hits h ON h.id = o.hit_id
		LEFT JOIN clients cl ON cl.server = h.server AND cl.org = h.org AND cl.client_id = h.client_id
		WHERE o.ioc_id = ? ORDER BY o.done_at IS NULL DESC, o.id DESC LIMIT ?`, h.IOC.ID, limit)
	if err != nil {
		return fmt.Errorf("writes of ioc %d: %w", h.IOC.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var w HistoryWrite
		var created, next int64
		var done sql.NullInt64
		if err := rows.Scan(&w.ID, &w.Kind, &w.HitID, &w.ClientID, &w.Hostname, &created, &done, &next, &w.Attempts, &w.LastError,
			&w.Parked, &w.IRISObject); err != nil {
			return fmt.Errorf("writes of ioc %d: %w", h.IOC.ID, err)
		}
		w.Created, w.Done, w.NextAttempt = time.UnixMilli(created).UTC(), msToTime(done), time.UnixMilli(next).UTC()
		h.Writes = append(h.Writes, w)
	}
	slices.SortFunc(h.Writes, func(a, b HistoryWrite) int { return int(a.ID - b.ID) })
	return rows.Err()
}
