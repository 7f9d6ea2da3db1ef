package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/velohunt/velohunt/internal/store"
)

// TestOpenReadOnlyAfterCrash: status reads a database left with its WAL by
// a serve that was killed (the WAL holds commits not in the file yet).
func TestOpenReadOnlyAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "v.db")
	db := openWithCase(t, path)
	defer db.Close()
	// A copy of the files as a killed process leaves them: no checkpoint,
	// the WAL beside the database, no shared-memory file.
	crash := filepath.Join(t.TempDir(), "v.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crash+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := store.OpenWith(ctx, crash, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.FindCase(ctx, 1); err != nil {
		t.Fatalf("the WAL's commit is not read: %v", err)
	}
}
