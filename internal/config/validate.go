package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/velohunt/velohunt/internal/ioc"
)

// FieldError is a validation error that names the configuration key.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("config key %s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

// ErrMissing is the reason given for a required key that is empty.
var ErrMissing = errors.New("required value is missing")

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks every value and returns the first problem found.
func (c *Config) Validate() error {
	if c.Database == "" {
		return &FieldError{Field: "database", Err: ErrMissing}
	}
	if err := checkListen(c.Listen); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fieldErr("log.format", "%q is not text or json", c.Log.Format)
	}
	if err := c.validateIRIS(); err != nil {
		return err
	}
	if !strings.HasPrefix(c.Webhook.Path, "/") {
		return fieldErr("webhook.path", "%q must start with /", c.Webhook.Path)
	}
	if c.Webhook.Secret == "" {
		return &FieldError{Field: "webhook.secret", Err: fmt.Errorf("%w (set %s or webhook.secret_file)", ErrMissing, EnvWebhookSecret)}
	}
	if len(c.Webhook.Secret) < 16 {
		return fieldErr("webhook.secret", "must be at least 16 characters")
	}
	if c.Webhook.RateLimit <= 0 {
		return fieldErr("webhook.rate_limit", "must be positive (requests per second)")
	}
	if c.Webhook.MaxBodyBytes < 1024 {
		return fieldErr("webhook.max_body_bytes", "must be at least 1024")
	}
	if err := c.validateVelociraptor(); err != nil {
		return err
	}
	if err := c.validateHunting(); err != nil {
		return err
	}
	loc, err := time.LoadLocation(c.Intake.TimeZone)
	if err != nil {
		return fieldErr("intake.time_zone", "unknown time zone %q", c.Intake.TimeZone)
	}
	if err := checkCron("intake.reconcile", c.Intake.Reconcile, loc); err != nil {
		return err
	}
	if c.Intake.SyncDelay < 0 {
		return fieldErr("intake.sync_delay", "must not be negative")
	}
	if c.Intake.FullSyncEvery < 0 {
		return fieldErr("intake.full_sync_every", "must not be negative")
	}
	if err := checkCron("watcher.schedule", c.Watcher.Schedule, loc); err != nil {
		return err
	}
	if err := c.validateRehunt(); err != nil {
		return err
	}
	if err := c.validateCollect(); err != nil {
		return err
	}
	return c.validateWriteback()
}

func (c *Config) validateRehunt() error {
	names := map[string]bool{}
	for i, r := range c.Rehunt.Rules {
		f := fmt.Sprintf("rehunt.rules[%d]", i)
		if r.Name == "" {
			return &FieldError{Field: f + ".name", Err: ErrMissing}
		}
		if names[r.Name] {
			return fieldErr(f+".name", "duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		tz := r.TimeZone
		if tz == "" {
			tz = c.Intake.TimeZone
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return fieldErr(f+".time_zone", "unknown time zone %q", tz)
		}
		if err := checkCron(f+".schedule", r.Schedule, loc); err != nil {
			return err
		}
		for _, k := range r.Kinds {
			if !ioc.Kind(k).Valid() {
				return fieldErr(f+".kinds", "unknown kind %q (known: hash, ip, domain, file)", k)
			}
		}
		for _, t := range r.TLP {
			if !slices.Contains(TLPNames, strings.ToLower(t)) {
				return fieldErr(f+".tlp", "unknown TLP %q (known: %s)", t, strings.Join(TLPNames, ", "))
			}
		}
		if r.MinAge < 0 {
			return fieldErr(f+".min_age", "must not be negative")
		}
	}
	return nil
}

func (c *Config) validateWriteback() error {
	w := c.Writeback
	if strings.TrimSpace(w.TabName) == "" {
		return &FieldError{Field: "writeback.tab_name", Err: ErrMissing}
	}
	if w.EventPer != "hit" && w.EventPer != "host" {
		return fieldErr("writeback.event_per", "%q is not hit or host", w.EventPer)
	}
	for _, f := range []struct{ key, val string }{{"writeback.event_category", w.EventCategory},
		{"writeback.asset_analysis_status", w.AssetAnalysisStatus}, {"writeback.asset_compromise_status", w.AssetCompromiseStatus}} {
		if strings.TrimSpace(f.val) == "" {
			return &FieldError{Field: f.key, Err: ErrMissing}
		}
	}
	if _, ok := w.AssetTypes["default"]; !ok {
		return fieldErr("writeback.asset_types", "needs a \"default\" entry")
	}
	for k := range w.AssetTypes {
		switch k {
		case "windows", "windows_server", "linux", "darwin", "default":
		default:
			return fieldErr("writeback.asset_types."+k, "unknown OS key (use windows, windows_server, linux, darwin, default)")
		}
	}
	if w.Settle < Duration(time.Second) {
		return fieldErr("writeback.settle", "must be at least 1s")
	}
	if w.TabMinInterval < 0 || w.TabMinInterval > Duration(24*time.Hour) {
		return fieldErr("writeback.tab_min_interval", "must be between 0 and 24h")
	}
	if w.Concurrency < 1 || w.Concurrency > 32 {
		return fieldErr("writeback.concurrency", "must be between 1 and 32")
	}
	if w.MaxHitsOnTab < 1 || w.MaxHitsOnTab > 1000 {
		return fieldErr("writeback.max_hits_on_tab", "must be between 1 and 1000")
	}
	if c.IRIS.SetupOnStart && c.IRIS.AdminAPIKey == "" {
		return fieldErr("iris.setup_on_start", "needs iris.admin_api_key (or %s)", EnvIRISAdminAPIKey)
	}
	return nil
}

func (c *Config) validateIRIS() error {
	if c.IRIS.URL == "" {
		return &FieldError{Field: "iris.url", Err: ErrMissing}
	}
	u, err := url.Parse(c.IRIS.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr("iris.url", "%q is not an http(s) URL", c.IRIS.URL)
	}
	if c.IRIS.APIKey == "" {
		return &FieldError{Field: "iris.api_key", Err: fmt.Errorf("%w (set %s or iris.api_key_file)", ErrMissing, EnvIRISAPIKey)}
	}
	if c.IRIS.Timeout <= 0 {
		return fieldErr("iris.timeout", "must be positive")
	}
	if c.IRIS.ServiceUserID < 0 {
		return fieldErr("iris.service_user_id", "must not be negative")
	}
	return nil
}

func (c *Config) validateVelociraptor() error {
	v := c.Velociraptor
	if len(v.Servers) == 0 {
		return &FieldError{Field: "velociraptor.servers", Err: ErrMissing}
	}
	names := map[string]bool{}
	for i, s := range v.Servers {
		f := fmt.Sprintf("velociraptor.servers[%d]", i)
		if s.Name == "" {
			return &FieldError{Field: f + ".name", Err: ErrMissing}
		}
		if names[s.Name] {
			return fieldErr(f+".name", "duplicate server name %q", s.Name)
		}
		names[s.Name] = true
		if s.APIConfig == "" {
			return &FieldError{Field: f + ".api_config", Err: ErrMissing}
		}
		if s.Timeout < 0 {
			return fieldErr(f+".timeout", "must not be negative")
		}
		l := s.Limits
		for _, x := range []struct {
			key string
			v   int
		}{{"max_active_hunts", l.MaxActiveHunts}, {"max_hunts_per_hour", l.MaxHuntsPerHour}, {"max_iocs_per_hunt", l.MaxIOCsPerHunt},
			{"cpu_limit", l.CPULimit}, {"ops_per_second", l.OpsPerSecond}} {
			if x.v < 0 {
				return fieldErr(f+".limits."+x.key, "must not be negative")
			}
		}
		if l.CPULimit > 100 {
			return fieldErr(f+".limits.cpu_limit", "must be at most 100 (percent)")
		}
		if l.ClientTimeout != 0 && l.ClientTimeout < Duration(time.Second) {
			return fieldErr(f+".limits.client_timeout", "must be at least 1s")
		}
		for kind := range s.Parameters {
			if _, ok := c.Hunting.Kinds[kind]; !ok {
				return fieldErr(f+".parameters."+kind, "unknown IOC kind (use hash, ip, domain, file)")
			}
		}
		if s.GUIURL != "" {
			if u, err := url.Parse(s.GUIURL); err != nil || u.Host == "" {
				return fieldErr(f+".gui_url", "%q is not a URL", s.GUIURL)
			}
		}
	}
	if v.Default.Server == "" {
		if len(v.Servers) > 1 {
			return fieldErr("velociraptor.default.server", "required when more than one server is configured")
		}
		c.Velociraptor.Default.Server = v.Servers[0].Name
	} else if !names[v.Default.Server] {
		return fieldErr("velociraptor.default.server", "unknown server %q", v.Default.Server)
	}
	if a := v.CaseAttribute; (a.Tab == "") != (a.Field == "") {
		return fieldErr("velociraptor.case_attribute", "set both tab and field, or neither")
	}
	for i, r := range v.Routes {
		f := fmt.Sprintf("velociraptor.routes[%d]", i)
		set := 0
		for _, ok := range []bool{r.Customer != "", r.Tag != "", r.CaseID != 0} {
			if ok {
				set++
			}
		}
		if set != 1 {
			return fieldErr(f, "set exactly one of customer, tag, case_id")
		}
		if !names[r.Server] {
			return fieldErr(f+".server", "unknown server %q", r.Server)
		}
	}
	return nil
}

func (c *Config) validateHunting() error {
	h := c.Hunting
	if h.BatchWindow < 0 || h.BatchWindow > Duration(time.Hour) {
		return fieldErr("hunting.batch_window", "must be between 0s and 1h")
	}
	if h.BatchMaxWait < h.BatchWindow {
		return fieldErr("hunting.batch_max_wait", "must be at least hunting.batch_window (%v)", h.BatchWindow)
	}
	if h.MaxIOCsPerHunt < 1 || h.MaxIOCsPerHunt > 100000 {
		return fieldErr("hunting.max_iocs_per_hunt", "must be between 1 and 100000")
	}
	if h.Expiry < Duration(time.Minute) {
		return fieldErr("hunting.expiry", "must be at least 1m")
	}
	if h.ClientTimeout < Duration(time.Second) {
		return fieldErr("hunting.client_timeout", "must be at least 1s")
	}
	if h.CPULimit < 0 || h.CPULimit > 100 {
		return fieldErr("hunting.cpu_limit", "must be between 0 and 100 (percent)")
	}
	if h.OpsPerSecond < 0 {
		return fieldErr("hunting.ops_per_second", "must not be negative")
	}
	for name, k := range h.Kinds {
		f := "hunting.kinds." + name
		if !ioc.Kind(name).Valid() {
			return fieldErr(f, "unknown kind %q (known: hash, ip, domain, file)", name)
		}
		if k.Artifact == "" {
			return &FieldError{Field: f + ".artifact", Err: ErrMissing}
		}
		if k.Parameter == "" {
			return &FieldError{Field: f + ".parameter", Err: ErrMissing}
		}
		switch k.Format {
		case "json", "lines", "csv", "regex":
		default:
			return fieldErr(f+".format", "%q is not one of json, lines, csv, regex", k.Format)
		}
		if err := k.Scope.validate(f + ".scope"); err != nil {
			return err
		}
	}
	return c.validateScopes()
}

// checkCron parses a cron spec in a time zone. cron runs "@every 0s" and
// "@every -3s" every second: an "@every" needs at least 1s.
func checkCron(field, spec string, loc *time.Location) error {
	if d, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every "); ok {
		v, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return fieldErr(field, "bad cron spec %q: %v", spec, err)
		}
		if v < time.Second {
			return fieldErr(field, "bad cron spec %q: @every needs a duration of at least 1s", spec)
		}
	}
	if _, err := cron.ParseStandard("CRON_TZ=" + loc.String() + " " + spec); err != nil {
		return fieldErr(field, "bad cron spec %q: %v", spec, err)
	}
	return nil
}

// checkListen checks that listen is host:port with a numeric port.
func checkListen(listen string) error {
	if listen == "" {
		return &FieldError{Field: "listen", Err: ErrMissing}
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fieldErr("listen", "%q is not host:port (for example 127.0.0.1:8080, or :8080 for every interface)", listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fieldErr("listen", "%q: the port must be a number from 0 to 65535 (host:port, for example 127.0.0.1:8080)", listen)
	}
	return nil
}

// labelRE is what a Velociraptor label looks like to velohunt: no spaces,
// quotes or commas (labels go into the hunt's condition as given).
var labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,63}$`)

func (s Scope) validate(field string) error {
	switch s.OS {
	case "", "windows", "linux", "darwin":
	default:
		return fieldErr(field+".os", "%q is not one of windows, linux, darwin", s.OS)
	}
	for _, l := range append(slices.Clone(s.IncludeLabels), s.ExcludeLabels...) {
		if !labelRE.MatchString(l) {
			return fieldErr(field, "label %q: want letters, digits and _.:@/+- (at most 64)", l)
		}
	}
	for _, l := range s.IncludeLabels {
		if slices.Contains(s.ExcludeLabels, l) {
			return fieldErr(field, "label %q is both included and excluded", l)
		}
	}
	return nil
}

// validateScopes refuses scopes that cannot go together on one hunt: a
// hunt's scope is its server's, narrowed by its case's routing rule, its
// kind and the re-hunt rule that queued it (excluded labels add up). Only
// one of those may list labels to include (a client with any of them):
// one list replacing another would widen the hunt. They may not name two
// OSes, nor an OS beside labels: Velociraptor 0.77.2's hunt() drops every
// label condition when an OS is set, excluded labels included, and would
// hunt clients the scope keeps out.
func (c *Config) validateScopes() error {
	type level struct {
		field string
		s     Scope
	}
	for i, srv := range c.Velociraptor.Servers {
		if err := srv.Scope.validate(fmt.Sprintf("velociraptor.servers[%d].scope", i)); err != nil {
			return err
		}
	}
	for i, r := range c.Velociraptor.Routes {
		if err := r.Scope.validate(fmt.Sprintf("velociraptor.routes[%d].scope", i)); err != nil {
			return err
		}
	}
	rules := []level{{}}
	for i, r := range c.Rehunt.Rules {
		f := fmt.Sprintf("rehunt.rules[%d].scope", i)
		if err := r.Scope.validate(f); err != nil {
			return err
		}
		rules = append(rules, level{f, r.Scope})
	}
	kinds := slices.Sorted(maps.Keys(c.Hunting.Kinds))
	for i, srv := range c.Velociraptor.Servers {
		server := level{fmt.Sprintf("velociraptor.servers[%d].scope", i), srv.Scope}
		routes := []level{{}} // the default route, or a case's routing attribute
		for j, r := range c.Velociraptor.Routes {
			if r.Server == srv.Name {
				routes = append(routes, level{fmt.Sprintf("velociraptor.routes[%d].scope", j), r.Scope})
			}
		}
		for _, route := range routes {
			for _, name := range kinds {
				kind := level{"hunting.kinds." + name + ".scope", c.Hunting.Kinds[name].Scope}
				for _, rule := range rules {
					var include, oses []level
					labels := false
					for _, l := range []level{server, route, kind, rule} {
						if len(l.s.IncludeLabels) > 0 {
							include = append(include, l)
						}
						if l.s.OS != "" && !slices.ContainsFunc(oses, func(o level) bool { return o.s.OS == l.s.OS }) {
							oses = append(oses, l)
						}
						labels = labels || len(l.s.IncludeLabels)+len(l.s.ExcludeLabels) > 0
					}
					switch {
					case len(include) > 1:
						return fieldErr(include[1].field, "include_labels is also set in %s: a hunt of both has one list of labels to include, and one replacing the other would widen it; set it in one place",
							include[0].field)
					case len(oses) > 1:
						return fieldErr(oses[1].field, "os %q, while %s says %q", oses[1].s.OS, oses[0].field, oses[0].s.OS)
					case len(oses) == 1 && labels:
						return fieldErr(oses[0].field, "os %q with labels in the scope of the same hunts (server %s, kind %s): Velociraptor's hunt() drops every label condition when an OS is set (excluded labels too); use an include label for the OS instead",
							oses[0].s.OS, srv.Name, name)
					}
				}
			}
		}
	}
	return nil
}
