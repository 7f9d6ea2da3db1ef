package main

import (
	"context"
	"flag"
	"io"
	"time"
)

// ServeCommand runs the service until SIGINT or SIGTERM.
type ServeCommand struct {
	Stderr io.Writer
}

// Run implements `velohunt serve`.
func (c *ServeCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-serve", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	grace := fs.Duration("shutdown-timeout", 20*time.Second, "how long shutdown may take")
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	app := &App{Config: cfg, Logger: newLogger(cfg.Log, c.Stderr)}
	if err := app.Open(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	app.Logger.Info("shutting down")
	closeCtx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	return app.Close(closeCtx)
}
