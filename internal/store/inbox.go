package store

import (
	"context"
	"fmt"
	"time"
)

// InboxItem is a persisted webhook event.
type InboxItem struct {
	ID         int64
	Event      string
	Payload    []byte
	ReceivedAt time.Time
}

// AddInbox persists a webhook event. Once it returns, the event survives a
// crash or a power loss (committed with synchronous=FULL) and will be
// handled: the webhook is answered 202 only after, and IRIS never sends it
// again.
func (db *DB) AddInbox(ctx context.Context, event string, payload []byte) error {
	return db.durableTx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO inbox (event, payload, received_at) VALUES (?, ?, ?)`, event, payload, tx.nowMS())
		if err != nil {
			return fmt.Errorf("add inbox: %w", err)
		}
		return nil
	})
}

// PeekInbox returns up to limit events, oldest first, without removing them.
func (db *DB) PeekInbox(ctx context.Context, limit int) ([]InboxItem, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT id, event, payload, received_at FROM inbox ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("peek inbox: %w", err)
	}
	defer rows.Close()
	var out []InboxItem
	for rows.Next() {
		var it InboxItem
		var at int64
		if err := rows.Scan(&it.ID, &it.Event, &it.Payload, &at); err != nil {
			return nil, fmt.Errorf("peek inbox: %w", err)
		}
		it.ReceivedAt = time.UnixMilli(at).UTC()
		out = append(out, it)
	}
	return out, rows.Err()
}

// DeleteInbox removes handled events, up to and including id.
func (db *DB) DeleteInbox(ctx context.Context, upTo int64) error {
	return db.exec(ctx, `DELETE FROM inbox WHERE id <= ?`, upTo)
}

// UsedHookTasks returns which of the IRIS task ids were already used.
func (db *DB) UsedHookTasks(ctx context.Context, ids []string) (map[string]bool, error) {
	used := map[string]bool{}
	for _, id := range ids {
		var n int
		if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hook_tasks WHERE task_id = ?`, id).Scan(&n); err != nil {
			return nil, fmt.Errorf("hook tasks: %w", err)
		}
		used[id] = n > 0
	}
	return used, nil
}

// UseHookTasks records IRIS task ids as used, and forgets those used more
// than a week ago (IRIS lists only its newest tasks).
func (db *DB) UseHookTasks(ctx context.Context, ids []string) error {
	return db.tx(ctx, func(tx *Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO hook_tasks (task_id, used_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, tx.nowMS()); err != nil {
				return fmt.Errorf("use hook task: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM hook_tasks WHERE used_at < ?`, tx.nowMS()-7*24*3600*1000)
		return err
	})
}
