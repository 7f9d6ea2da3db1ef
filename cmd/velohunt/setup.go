package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
)

// SetupCommand adds the "Velociraptor hunt" tab to IRIS's IOC attribute
// template and pushes it onto existing IOCs. It needs an administrator's
// API key and is idempotent.
type SetupCommand struct {
	Stdout, Stderr io.Writer
}

// Run implements `velohunt setup`.
func (c *SetupCommand) Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("velohunt-setup", flag.ContinueOnError)
	fs.SetOutput(c.Stderr)
	cfg, err := parseWithConfig(fs, args)
	if err != nil {
		return err
	}
	admin, err := adminClient(cfg)
	if err != nil {
		return err
	}
	changed, err := ensureTab(ctx, admin, cfg.Writeback.TabName)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(c.Stdout, "added the %q tab to IRIS's IOC template and pushed it onto existing IOCs\n", cfg.Writeback.TabName)
	} else {
		fmt.Fprintf(c.Stdout, "IRIS's IOC template already has the %q tab; nothing to do\n", cfg.Writeback.TabName)
	}
	return nil
}

func adminClient(cfg config.Config) (*iris.Client, error) {
	if cfg.IRIS.AdminAPIKey == "" {
		return nil, fmt.Errorf("setup needs an IRIS administrator key: set %s or iris.admin_api_key_file", config.EnvIRISAdminAPIKey)
	}
	return iris.New(iris.Options{URL: cfg.IRIS.URL, APIKey: cfg.IRIS.AdminAPIKey.Reveal(), CAFile: cfg.IRIS.CAFile,
		InsecureSkipVerify: cfg.IRIS.InsecureSkipVerify, Timeout: cfg.IRIS.Timeout.D()})
}

// ensureTab adds the tab's text fields to the IOC template when missing
// (keeping every other tab and field as it is) and pushes the template onto
// existing IOCs, which also repairs IOCs whose custom attributes are null.
// No value stored on any IOC is changed.
func ensureTab(ctx context.Context, admin *iris.Client, tab string) (bool, error) {
	return pushTab(ctx, admin, tab, false)
}

// pushTab is ensureTab; force pushes even when the template already has
// every field (the repair of IOCs with null attributes).
func pushTab(ctx context.Context, admin *iris.Client, tab string, force bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return admin.EnsureIOCTab(ctx, tab, render.TabTemplate(), force)
}
