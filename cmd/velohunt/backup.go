package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/velohunt/velohunt/internal/store"
)

// BackupCommand writes a consistent copy of the database, safe while serve
// runs.
type BackupCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt backup -config FILE BACKUP-FILE`.
func (c *BackupCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-backup", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("name the backup file: velohunt backup -config FILE BACKUP-FILE")
	}
	dst := fs.Arg(0)
	// Read-only and whatever its schema: a backup taken before an upgrade
	// must be the database as the old velohunt left it.
	db, err := store.OpenWith(ctx, cfg.Database, store.Options{ReadOnly: true, AnySchema: true})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, dst); err != nil {
		return err
	}
	check, err := store.OpenWith(ctx, dst, store.Options{ReadOnly: true, AnySchema: true, QuickCheck: true})
	if err != nil {
		return fmt.Errorf("the backup %s does not read back: %w", dst, err)
	}
	check.Close()
	fmt.Fprintf(c.Stdout, "backup of %s written to %s (checked); to restore it, stop velohunt and copy it over the database, "+
		"removing the database's -wal and -shm files\n", cfg.Database, dst)
	return nil
}
