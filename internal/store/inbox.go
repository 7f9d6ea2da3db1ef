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
// crash and will be handled.
func (db *DB) AddInbox(ctx context.Context, event string, payload []byte) error {
	return db.exec(ctx, `INSERT INTO inbox (event, payload, received_at) VALUES (?, ?, ?)`, event, payload, db.Now().UnixMilli())
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
