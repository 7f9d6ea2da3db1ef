package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
)

// ReasonForeignTab starts the reason of a tab write parked because the
// tab was written by another velohunt instance.
const ReasonForeignTab = "tab written by another velohunt instance"

// instancePattern is what an instance id looks like.
var instancePattern = regexp.MustCompile(`^vi-[0-9a-f]{16}$`)

// ValidInstanceID reports whether s looks like an instance id.
func ValidInstanceID(s string) bool { return instancePattern.MatchString(s) }

// InstanceID returns this database's velohunt instance id, made on first
// use ("vi-" and 16 hex digits). It goes with the database: a velohunt
// moved with its database keeps it.
func (db *DB) InstanceID(ctx context.Context) (string, error) {
	var id string
	err := db.tx(ctx, func(tx *Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM instance LIMIT 1`).Scan(&id)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		id = "vi-" + hex.EncodeToString(b)
		_, err = tx.ExecContext(ctx, `INSERT INTO instance (id, created_at) VALUES (?, ?)`, id, tx.nowMS())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// ReadInstanceID returns this database's instance id, or "" when none was
// made yet; it writes nothing (a read-only database).
func (db *DB) ReadInstanceID(ctx context.Context) (string, error) {
	var id string
	err := db.db.QueryRowContext(ctx, `SELECT id FROM instance LIMIT 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// AdoptInstanceID makes this database take the instance id of the velohunt
// it replaces, so that it may write the tabs that one wrote. It refuses
// once this database wrote a tab under its own id (those would then look
// foreign), and an id of the wrong form.
func (db *DB) AdoptInstanceID(ctx context.Context, id string) error {
	if !ValidInstanceID(id) {
		return fmt.Errorf("%q is not an instance id (vi- and 16 hex digits, as on a tab's \"Last update\")", id)
	}
	return db.tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tabs`).Scan(&n); err != nil {
			return fmt.Errorf("adopt instance id: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("this database already wrote %d tab(s) under its own instance id; adopt an id only before the first start", n)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM instance`); err != nil {
			return fmt.Errorf("adopt instance id: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO instance (id, created_at) VALUES (?, ?)`, id, tx.nowMS())
		return err
	})
}

// ForeignTabs counts the IOCs whose tab velohunt did not write because
// another instance wrote it (parked tab writes).
func (db *DB) ForeignTabs(ctx context.Context) (int, error) {
	var n int
	err := db.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT ioc_id) FROM outbox WHERE kind = 'tab' AND parked = 1
		AND last_error LIKE ? || '%'`, ReasonForeignTab).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("foreign tabs: %w", err)
	}
	return n, nil
}
