package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/velohunt/velohunt/internal/store"
)

// RetryParkedCommand puts parked IRIS writes back in the queue, once the
// cause (a permission, a deleted IOC template field...) is fixed.
type RetryParkedCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt retry-parked`.
func (c *RetryParkedCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-retry-parked", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	db, err := store.OpenWith(ctx, cfg.Database, store.Options{MustExist: true, Logger: newLogger(cfg.Log, c.Stderr)})
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.RetryParked(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "%d parked write(s) queued again; a running service sends them within seconds\n", n)
	return nil
}
