package store

import (
	"context"
	"fmt"
	"regexp"
)

// ReasonStoppedByOperator is the end reason of a hunt stopped with
// `velohunt hunts stop`.
const ReasonStoppedByOperator = "stopped by operator"

// markerPattern is what newMarker makes.
var markerPattern = regexp.MustCompile(`^velohunt-[0-9a-f]{20}$`)

// ValidMarker reports whether s is a marker tag velohunt makes: a hunt is
// velohunt's only if it carries one, so a row whose marker is anything else
// (a tampered database) names no hunt of velohunt's.
func ValidMarker(s string) bool { return markerPattern.MatchString(s) }

// OpenHunts returns the hunts not ended yet (planned, created or running),
// oldest first.
func (db *DB) OpenHunts(ctx context.Context) ([]Hunt, error) {
	return db.queryHunts(ctx, `WHERE state IN ('planned','created','running') ORDER BY id`)
}

// StopByOperator records that an operator stopped a hunt (`velohunt hunts
// stop`), once Velociraptor stopped it or it never reached Velociraptor:
// the hunt ends as stopped with ReasonStoppedByOperator, so the planner
// never launches it and the watcher no longer reads it; its IOCs become
// "hunted" unless another active hunt covers them, and their tabs are
// queued, all in one transaction. A hunt the watcher ended as stopped
// without a reason meanwhile (it saw the operator's stop in Velociraptor)
// gets the reason too; one the operator stopped before stays so. It reports whether the hunt now reads stopped by
// the operator: false when it had ended otherwise (finished, expired, or
// stopped for another reason).
func (db *DB) StopByOperator(ctx context.Context, id int64) (bool, error) {
	var stopped bool
	err := db.tx(ctx, func(tx *Tx) error {
		ended, iocs, err := tx.endHunt(ctx, id, HuntStopped, ReasonStoppedByOperator)
		if err != nil {
			return err
		}
		if !ended {
			res, err := tx.ExecContext(ctx, `UPDATE hunts SET end_reason = ? WHERE id = ? AND state = 'stopped' AND end_reason IN ('', ?)`,
				ReasonStoppedByOperator, id, ReasonStoppedByOperator)
			if err != nil {
				return fmt.Errorf("stop hunt %d: %w", id, err)
			}
			n, _ := res.RowsAffected()
			ended = n == 1
		}
		stopped = ended
		if !ended {
			return nil
		}
		for _, i := range iocs {
			if err := tx.enqueueTab(ctx, i); err != nil {
				return err
			}
		}
		return nil
	})
	return stopped, err
}
