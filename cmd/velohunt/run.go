package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/velohunt/velohunt/internal/config"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

// version is Version or, when the build did not stamp one, what the Go
// toolchain recorded: the module version (`go install …@v1.2.3`, or a
// pseudo-version from the checkout's VCS), else the VCS revision.
func version() string { return versionFrom(Version, debug.ReadBuildInfo) }

func versionFrom(stamped string, read func() (*debug.BuildInfo, bool)) string {
	if stamped != "dev" {
		return stamped
	}
	info, ok := read()
	if !ok {
		return stamped
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return stamped
	}
	return "dev-" + rev[:min(12, len(rev))] + dirty
}

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

const usage = `velohunt hunts the IOCs of DFIR-IRIS cases across Velociraptor endpoints.

Usage:
  velohunt serve   -config FILE            run the service
  velohunt demo                            run the whole pipeline against simulated IRIS and Velociraptor
  velohunt plan    -config FILE [-json]    show what serve would hunt now (per server and org, kind, limits), touching nothing
  velohunt hunt    -config FILE -case N [-ioc ID]   hunt a case's IOCs (or one IOC) now
  velohunt hunts list -config FILE [-case N] [-ended]   list velohunt's hunts
  velohunt hunts stop -config FILE (-all | -case N) [-force] [-yes]   stop velohunt's own hunts (without -yes: show what would stop)
  velohunt status  -config FILE [-json]    show IOCs, hunts, refusals, parked writes and the backlog
  velohunt status  -config FILE -ioc N | -case N [-json]   what velohunt knows and did about one IRIS IOC or case, in time order
  velohunt setup   -config FILE            add the "Velociraptor hunt" tab to IRIS, repair IOCs with null attributes (administrator key)
  velohunt retry-parked -config FILE       queue IRIS writes that IRIS refused again
  velohunt check   -config FILE            check IRIS and every Velociraptor server and org; print what to fix
  velohunt instance -config FILE [-adopt ID]  print (or, for a new database, take over) the instance id written on tabs
  velohunt backup  -config FILE BACKUP     copy the database to BACKUP (safe while serve runs)
  velohunt version                         print the version
`

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var cmd command
	switch args[0] {
	case "serve":
		cmd = &ServeCommand{Stderr: stderr}
	case "demo":
		cmd = &DemoCommand{Stdout: stdout, Stderr: stderr}
	case "hunt":
		cmd = &HuntCommand{Stdout: stdout, Stderr: stderr}
	case "plan":
		cmd = &PlanCommand{Stdout: stdout, Stderr: stderr}
	case "hunts":
		cmd = &HuntsCommand{Stdout: stdout, Stderr: stderr}
	case "status":
		cmd = &StatusCommand{Stdout: stdout}
	case "check":
		cmd = &CheckCommand{Stdout: stdout, Stderr: stderr}
	case "retry-parked":
		cmd = &RetryParkedCommand{Stdout: stdout, Stderr: stderr}
	case "instance":
		cmd = &InstanceCommand{Stdout: stdout, Stderr: stderr}
	case "setup":
		cmd = &SetupCommand{Stdout: stdout, Stderr: stderr}
	case "backup":
		cmd = &BackupCommand{Stdout: stdout, Stderr: stderr}
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "velohunt", version())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "velohunt: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err := cmd.Run(ctx, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintf(stderr, "velohunt %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// parseWithConfig adds the -config flag, parses args and loads the file.
func parseWithConfig(fs *flag.FlagSet, args []string) (config.Config, error) {
	path := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	return loadConfig(*path)
}

// loadConfig reads the config file named by -config.
func loadConfig(path string) (config.Config, error) {
	if path == "" {
		return config.Config{}, errors.New("-config is required (see configs/velohunt.example.yaml)")
	}
	return config.Load(path)
}

// newLogger builds the logger of the config.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch strings.ToLower(c.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
