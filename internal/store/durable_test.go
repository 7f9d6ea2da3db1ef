package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestDurableTx: webhook events and launch claims commit with
// synchronous=FULL (they survive a power loss); every other write keeps
// NORMAL, which costs half as much on the results path.
func TestDurableTx(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var inside int
	if err := db.durableTx(ctx, func(tx *Tx) error {
		return tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&inside)
	}); err != nil {
		t.Fatal(err)
	}
	if inside != 2 {
		t.Fatalf("synchronous inside a durable transaction = %d, want 2 (FULL)", inside)
	}
	var plain int
	if err := db.tx(ctx, func(tx *Tx) error { return tx.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&plain) }); err != nil {
		t.Fatal(err)
	}
	if plain != 1 {
		t.Fatalf("synchronous after it = %d, want 1 (NORMAL) again", plain)
	}
	if err := db.AddInbox(ctx, "create", []byte(`{"iocs":[]}`)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after AddInbox synchronous = %d (%v), want 1", n, err)
	}
}

// BenchmarkInbox measures storing one webhook event, durably (FULL, as
// AddInbox does) and, for comparison, with the store's default (NORMAL).
func BenchmarkInbox(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "v.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	payload := []byte(`{"iocs":[{"ioc_id":8,"user_id":1,"ioc_value":"0123456789abcdef0123456789abcdef","ioc_type_id":90}]}`)
	b.Run("Full", func(b *testing.B) {
		for range b.N {
			if err := db.AddInbox(ctx, "create", payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Normal", func(b *testing.B) {
		for range b.N {
			if err := db.exec(ctx, `INSERT INTO inbox (event, payload, received_at) VALUES (?, ?, ?)`, "create", payload, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
