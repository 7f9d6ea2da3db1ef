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

// Hunt states.
const (
	HuntPlanned  = "planned"
	HuntCreated  = "created"
	HuntRunning  = "running"
	HuntFinished = "finished"
	HuntStopped  = "stopped"
	HuntExpired  = "expired"
)

// Group is a set of queued IOCs that can share hunts.
type Group struct {
	Server string
	Org    string
	Kind   ioc.Kind
	Count  int
	Oldest time.Time // queue time of its oldest IOC
	Newest time.Time // queue time of its newest IOC
	Urgent bool      // an analyst asked for it (manual trigger, hunt command)
	// RouteScope is the scope of its cases' routing rule, Rule the re-hunt
	// rule that queued its IOCs ("" : none): IOCs of different ones are
	// hunted apart.
	RouteScope string
	Rule       string
	// Scope is the clients a hunt of the group is limited to (the
	// planner's encoding; "" : every client), recorded on the hunt.
	Scope string
}

// Hunt is a stored hunt.
type Hunt struct {
	ID            int64
	Marker        string
	Server        string
	Org           string
	Kind          ioc.Kind
	Artifact      string
	VRHuntID      string
	State         string
	Attempts      int
	LastError     string
	NextAttemptAt time.Time
	ExpiresAt     time.Time
	CreatedAt     time.Time
	StartedAt     time.Time
	EndedAt       time.Time
	// EndReason says why a hunt ended early ("" when it ran its course,
	// or ended as Velociraptor said).
	EndReason string
	// Scope is the clients the hunt was limited to, as planned ("" : every
	// client).
	Scope string
}

// HuntIOC is one IOC row a hunt covers.
type HuntIOC struct {
	IOCID     int64
	CaseID    int64
	IRISID    int64
	HuntValue string // the value the hunt was planned with
	TypeName  string // the IOC's IRIS type and value now
	Value     string
	// Live is false when the IOC was removed, its case closed, or its value
	// changed since: the hunt's rows no longer belong to it.
	Live bool
}

// QueuedGroups returns the queued IOCs of open cases grouped by server, org
// and kind.
func (db *DB) QueuedGroups(ctx context.Context) ([]Group, error) {
	rows, err := db.db.QueryContext(ctx, `
		SELECT c.server, c.org, i.kind, c.scope, `+ruleOf+`, COUNT(*), MIN(i.queued_at), MAX(i.queued_at),
			MAX(i.source IN ('manual','cli'))
		FROM iocs i JOIN cases c ON c.case_id = i.case_id
		WHERE i.state = 'queued' AND c.is_open = 1
		GROUP BY c.server, c.org, i.kind, c.scope, `+ruleOf+` ORDER BY MIN(i.queued_at)`)
	if err != nil {
		return nil, fmt.Errorf("queued groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		var g Group
		var kind string
		var oldest, newest sql.NullInt64
		if err := rows.Scan(&g.Server, &g.Org, &kind, &g.RouteScope, &g.Rule, &g.Count, &oldest, &newest, &g.Urgent); err != nil {
			return nil, fmt.Errorf("queued groups: %w", err)
		}
		g.Kind = ioc.Kind(kind)
		g.Oldest = msToTime(oldest)
		g.Newest = msToTime(newest)
		out = append(out, g)
	}
	return out, rows.Err()
}

// ruleOf is the re-hunt rule that queued an IOC row i (” : none), from
// its source ("rehunt:<rule>").
const ruleOf = `(CASE WHEN i.source LIKE 'rehunt:%' THEN substr(i.source, 8) ELSE '' END)`

// PlanHunt takes up to max queued IOCs of the group, oldest first, and
// records one planned hunt covering them, all in one transaction: the IOCs
// move to "hunting", so no other hunt takes them. It returns the hunt, or
// ENOTFOUND when the group has nothing queued.
func (db *DB) PlanHunt(ctx context.Context, g Group, max int, artifact string, expiry time.Duration) (Hunt, error) {
	var h Hunt
	err := db.tx(ctx, func(tx *Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT i.id FROM iocs i JOIN cases c ON c.case_id = i.case_id
			WHERE i.state = 'queued' AND c.is_open = 1 AND c.server = ? AND c.org = ? AND i.kind = ?
				AND c.scope = ? AND `+ruleOf+` = ?
			ORDER BY i.queued_at, i.id LIMIT ?`, g.Server, g.Org, string(g.Kind), g.RouteScope, g.Rule, max)
		if err != nil {
			return fmt.Errorf("plan hunt: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("plan hunt: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 0 {
			return ioc.Errorf(ioc.ENOTFOUND, "nothing queued for %s/%s/%s", g.Server, g.Org, g.Kind)
		}
		marker, err := newMarker()
		if err != nil {
			return err
		}
		h = Hunt{Marker: marker, Server: g.Server, Org: g.Org, Kind: g.Kind, Artifact: artifact, State: HuntPlanned,
			CreatedAt: tx.now, ExpiresAt: tx.now.Add(expiry), Scope: g.Scope}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO hunts (marker, server, org, kind, artifact, state, expires_at, created_at, scope)
			VALUES (?, ?, ?, ?, ?, 'planned', ?, ?, ?)`,
			marker, g.Server, g.Org, string(g.Kind), artifact, h.ExpiresAt.UnixMilli(), tx.nowMS(), g.Scope)
		if err != nil {
			return fmt.Errorf("plan hunt: %w", err)
		}
		if h.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("plan hunt: %w", err)
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO hunt_iocs (hunt_id, ioc_id, hunt_value)
				SELECT ?, id, hunt_value FROM iocs WHERE id = ?`, h.ID, id); err != nil {
				return fmt.Errorf("plan hunt: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, `
			UPDATE iocs SET state = 'hunting', queued_at = NULL, last_hunt_at = ?, updated_at = ?
			WHERE id IN (SELECT ioc_id FROM hunt_iocs WHERE hunt_id = ?)`, tx.nowMS(), tx.nowMS(), h.ID)
		if err != nil {
			return fmt.Errorf("plan hunt: %w", err)
		}
		return nil
	})
	return h, err
}

// newMarker returns a random tag that identifies one velohunt hunt.
func newMarker() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("marker: %w", err)
	}
	return "velohunt-" + hex.EncodeToString(b), nil
}

const huntColumns = `id, marker, server, org, kind, artifact, COALESCE(vr_hunt_id, ''), state, attempts, last_error,
	next_attempt_at, expires_at, created_at, started_at, ended_at, end_reason, scope`

func scanHunt(s interface{ Scan(...any) error }) (Hunt, error) {
	var h Hunt
	var kind string
	var next, expires, created int64
	var started, ended sql.NullInt64
	err := s.Scan(&h.ID, &h.Marker, &h.Server, &h.Org, &kind, &h.Artifact, &h.VRHuntID, &h.State, &h.Attempts,
		&h.LastError, &next, &expires, &created, &started, &ended, &h.EndReason, &h.Scope)
	h.Kind = ioc.Kind(kind)
	h.NextAttemptAt = time.UnixMilli(next).UTC()
	h.ExpiresAt = time.UnixMilli(expires).UTC()
	h.CreatedAt = time.UnixMilli(created).UTC()
	h.StartedAt = msToTime(started)
	h.EndedAt = msToTime(ended)
	return h, err
}

func (db *DB) queryHunts(ctx context.Context, where string, args ...any) ([]Hunt, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT `+huntColumns+` FROM hunts `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("query hunts: %w", err)
	}
	defer rows.Close()
	var out []Hunt
	for rows.Next() {
		h, err := scanHunt(rows)
		if err != nil {
			return nil, fmt.Errorf("query hunts: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// DueLaunches returns hunts not yet started whose next attempt is due.
func (db *DB) DueLaunches(ctx context.Context, limit int) ([]Hunt, error) {
	return db.queryHunts(ctx, `WHERE state IN ('planned','created') AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`,
		db.Now().UnixMilli(), limit)
}

// FindHunt returns a hunt by its row id. Returns ENOTFOUND when absent.
func (db *DB) FindHunt(ctx context.Context, id int64) (Hunt, error) {
	h, err := scanHunt(db.db.QueryRowContext(ctx, `SELECT `+huntColumns+` FROM hunts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Hunt{}, ioc.Errorf(ioc.ENOTFOUND, "hunt %d not found", id)
	}
	return h, err
}

// RecentHunts returns the newest hunts, up to limit.
func (db *DB) RecentHunts(ctx context.Context, limit int) ([]Hunt, error) {
	return db.queryHunts(ctx, `ORDER BY id DESC LIMIT ?`, limit)
}

// HuntIOCs returns the IOC rows a hunt covers, by planned value.
func (db *DB) HuntIOCs(ctx context.Context, huntID int64) ([]HuntIOC, error) {
	rows, err := db.db.QueryContext(ctx, `
		SELECT i.id, i.case_id, i.iris_id, h.hunt_value, i.state != 'removed' AND i.hunt_value = h.hunt_value, i.type_name, i.value
		FROM hunt_iocs h JOIN iocs i ON i.id = h.ioc_id
		WHERE h.hunt_id = ? ORDER BY h.hunt_value, i.id`, huntID)
	if err != nil {
		return nil, fmt.Errorf("hunt iocs: %w", err)
	}
	defer rows.Close()
	var out []HuntIOC
	for rows.Next() {
		var h HuntIOC
		if err := rows.Scan(&h.IOCID, &h.CaseID, &h.IRISID, &h.HuntValue, &h.Live, &h.TypeName, &h.Value); err != nil {
			return nil, fmt.Errorf("hunt iocs: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// ClaimLaunch takes a due hunt for one launch attempt: it counts the
// attempt, pushes the next attempt lease ahead and names this handle's
// launcher as the claim's holder (launchers.go), in one statement, so two
// processes (serve and the hunt command) never launch the same hunt at
// once. The attempt is counted before the Velociraptor call, so that after
// a crash during the call the hunt is looked up by its marker before it is
// created again. It reports false when another launcher holds the hunt.
// The claim is committed durably (synchronous=FULL), so it survives a
// power loss too.
func (db *DB) ClaimLaunch(ctx context.Context, id int64, lease time.Duration) (bool, error) {
	holder := db.holder()
	var ok bool
	err := db.durableTx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hunts SET attempts = attempts + 1, next_attempt_at = ?,
			launch_holder = ?, launch_claimed_at = ?
			WHERE id = ? AND state IN ('planned','created') AND next_attempt_at <= ?`,
			tx.now.Add(lease).UnixMilli(), holder, tx.nowMS(), id, tx.nowMS())
		if err != nil {
			return fmt.Errorf("claim hunt %d: %w", id, err)
		}
		n, _ := res.RowsAffected()
		ok = n == 1
		return nil
	})
	return ok, err
}

// ReleaseClaims makes due the hunts whose launch claim is held by a
// launcher that ended, and returns how many. A claim is released no
// sooner than grace after it was made: a create that the dead launcher
// sent can still be finishing in Velociraptor, and the next attempt looks
// for it by its marker. Claims without a holder wait their lease out.
func (db *DB) ReleaseClaims(ctx context.Context, grace time.Duration) (int, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT DISTINCT launch_holder FROM hunts
		WHERE state IN ('planned','created') AND next_attempt_at > ? AND launch_holder <> ''`, db.Now().UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("launch claims: %w", err)
	}
	var holders []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return 0, fmt.Errorf("launch claims: %w", err)
		}
		holders = append(holders, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("launch claims: %w", err)
	}
	released := 0
	for _, h := range holders {
		if !db.holderGone(h) {
			continue
		}
		err := db.tx(ctx, func(tx *Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE hunts SET next_attempt_at = MAX(?, launch_claimed_at + ?), launch_holder = ''
				WHERE launch_holder = ? AND state IN ('planned','created') AND next_attempt_at > ?`,
				tx.nowMS(), grace.Milliseconds(), h, tx.nowMS())
			if err != nil {
				return fmt.Errorf("release launch claims: %w", err)
			}
			n, _ := res.RowsAffected()
			released += int(n)
			return nil
		})
		if err != nil {
			return released, err
		}
	}
	return released, nil
}

// SetHuntCreated records the Velociraptor hunt id of a created (paused)
// hunt. A hunt that ended while its launch created it (an operator stopped
// it, or nothing was left to hunt) keeps its state and gets the id too: the
// launcher then stops the hunt it made, and the id stays on record.
func (db *DB) SetHuntCreated(ctx context.Context, id int64, vrHuntID string) error {
	return db.exec(ctx, `UPDATE hunts SET vr_hunt_id = ?,
			last_error = CASE WHEN state = 'planned' THEN '' ELSE last_error END,
			state = CASE WHEN state = 'planned' THEN 'created' ELSE state END
		WHERE id = ? AND (state = 'planned' OR (state IN ('finished','stopped','expired') AND vr_hunt_id IS NULL))`, vrHuntID, id)
}

// SetHuntRunning records that a hunt was started and queues the tab
// updates of its IOCs ("hunting").
func (db *DB) SetHuntRunning(ctx context.Context, id int64) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE hunts SET state = 'running', started_at = ?, last_error = ''
			WHERE id = ? AND state IN ('planned','created')`, tx.nowMS(), id); err != nil {
			return fmt.Errorf("hunt %d running: %w", id, err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO outbox (kind, case_id, ioc_id, dedup, marker, created_at)
			SELECT 'tab', i.case_id, i.id, '', '', ? FROM hunt_iocs h JOIN iocs i ON i.id = h.ioc_id WHERE h.hunt_id = ?
			ON CONFLICT DO NOTHING`, tx.nowMS(), id)
		if err != nil {
			return fmt.Errorf("hunt %d running: %w", id, err)
		}
		return nil
	})
}

// SetLaunchError records a failed launch attempt and when to try again.
func (db *DB) SetLaunchError(ctx context.Context, id int64, msg string, next time.Time) error {
	return db.exec(ctx, `UPDATE hunts SET last_error = ?, next_attempt_at = ?, launch_holder = '' WHERE id = ?`,
		clipText(msg, 1000), next.UnixMilli(), id)
}

func (db *DB) exec(ctx context.Context, q string, args ...any) error {
	return db.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	})
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
