package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/velohunt/velohunt/internal/store"
)

// InstanceCommand prints this velohunt's instance id (written on every tab
// it writes), or, with -adopt, makes a new database take the id of the
// velohunt it replaces, so that it writes the tabs that one wrote.
type InstanceCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt instance`.
func (c *InstanceCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-instance", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	adopt := fs.String("adopt", "", "take this instance id (vi-…, from a tab's \"Last update\") before the first start of a new database")
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	// Only -adopt, which prepares a new database before its first start,
	// may create one; printing needs the database to exist.
	db, err := store.OpenWith(ctx, cfg.Database, store.Options{MustExist: *adopt == "", Logger: newLogger(cfg.Log, c.Stderr)})
	if err != nil {
		return err
	}
	defer db.Close()
	if *adopt != "" {
		if err := db.AdoptInstanceID(ctx, *adopt); err != nil {
			return err
		}
	}
	id, err := db.InstanceID(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.Stdout, id)
	return nil
}
