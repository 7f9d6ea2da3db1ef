package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// TestBackupWhileWriting: a backup taken from a read-only connection while
// another writes is a consistent database, 0600, and never overwrites a
// file.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "v.db")
	db := openWithCase(t, path)
	defer db.Close()
	ro, err := store.OpenWith(ctx, path, store.Options{ReadOnly: true, AnySchema: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(2); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.UpsertCase(ctx, ioc.Case{ID: i, Open: true}, ioc.Route{Server: "main"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	backup := filepath.Join(dir, "backup.db")
	err = ro.Backup(ctx, backup)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %04o, want 0600", fi.Mode().Perm())
	}
	b, err := store.OpenWith(ctx, backup, store.Options{QuickCheck: true, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.FindCase(ctx, 1); err != nil {
		t.Fatalf("case 1 not in the backup: %v", err)
	}
	if err := ro.Backup(ctx, backup); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("backup over an existing file: %v", err)
	}
}
