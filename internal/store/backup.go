package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database to path with SQLite's
// VACUUM INTO: one read transaction, so it is safe while a serve writes
// (WAL readers do not block the writer). The copy is a plain SQLite file
// (no -wal), readable by its owner only. path must not exist, or be empty.
func (db *DB) Backup(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("backup %s: the file exists; name a new file", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("backup %s: permission denied on directory %s", path, filepath.Dir(path))
	case err != nil:
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	if _, err := db.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("backup %s: %w", path, err)
	}
	return nil
}
