// Package config loads velohunt's YAML configuration: defaults, a strict
// decode that refuses unknown keys, secrets from files or the environment, and
// a validation that names the offending key.
package config

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Environment variables that override secrets in the file.
const (
	EnvIRISAPIKey      = "VELOHUNT_IRIS_API_KEY"
	EnvIRISAdminAPIKey = "VELOHUNT_IRIS_ADMIN_API_KEY"
	EnvWebhookSecret   = "VELOHUNT_WEBHOOK_SECRET"
)

// Config is the whole configuration. See configs/velohunt.example.yaml.
type Config struct {
	Database     string       `yaml:"database"`
	Listen       string       `yaml:"listen"`
	Log          Log          `yaml:"log"`
	IRIS         IRIS         `yaml:"iris"`
	Webhook      Webhook      `yaml:"webhook"`
	Velociraptor Velociraptor `yaml:"velociraptor"`
	Hunting      Hunting      `yaml:"hunting"`
	Intake       Intake       `yaml:"intake"`
	Watcher      Watcher      `yaml:"watcher"`
	Writeback    Writeback    `yaml:"writeback"`
	Rehunt       Rehunt       `yaml:"rehunt"`
	Collect      Collect      `yaml:"collect"`
}

// Rehunt holds the re-hunt rules.
type Rehunt struct {
	Rules []RehuntRule `yaml:"rules"`
}

// RehuntRule re-hunts the IOCs it selects on a schedule.
type RehuntRule struct {
	Name     string `yaml:"name"`
	Schedule string `yaml:"schedule"`  // cron spec
	TimeZone string `yaml:"time_zone"` // default intake.time_zone
	// Selector; an empty list selects everything.
	Kinds      []string `yaml:"kinds"`       // hash, ip, domain, file
	TLP        []string `yaml:"tlp"`         // red, amber, green, clear, amber+strict
	CaseStates []string `yaml:"case_states"` // "open" (default: any open case) or IRIS state names
	CaseTags   []string `yaml:"case_tags"`
	Customers  []string `yaml:"customers"`
	// MinAge is the least time since the IOC's last hunt started.
	MinAge Duration `yaml:"min_age"`
	// Overlap re-hunts IOCs that an unexpired hunt still covers.
	Overlap bool `yaml:"overlap"`
	// Scope limits the rule's re-hunts to some clients.
	Scope Scope `yaml:"scope"`
}

// TLPNames are IRIS's TLP names.
var TLPNames = []string{"red", "amber", "green", "clear", "amber+strict"}

// Watcher configures how hunt results are read.
type Watcher struct {
	// Schedule is a cron spec ("@every 30s" works) for a pass over every
	// running hunt.
	Schedule string `yaml:"schedule"`
	// WatchFlows wakes the watcher when a hunt's flow completes, through a
	// watch_monitoring(System.Flow.Completion) stream per server and org.
	WatchFlows bool `yaml:"watch_flows"`
}

// Writeback configures what velohunt writes into IRIS.
type Writeback struct {
	TabName string `yaml:"tab_name"`
	// EventPer is "hit" (one timeline event per hit) or "host" (one per
	// IOC and host).
	EventPer              string            `yaml:"event_per"`
	EventCategory         string            `yaml:"event_category"`
	EventColor            string            `yaml:"event_color"`
	AssetAnalysisStatus   string            `yaml:"asset_analysis_status"`
	AssetCompromiseStatus string            `yaml:"asset_compromise_status"`
	AssetTypes            map[string]string `yaml:"asset_types"`
	MaxHitsOnTab          int               `yaml:"max_hits_on_tab"`
	// TabMinInterval is the least time between two updates of one IOC's
	// tab. Each update is an IOC update in IRIS: it fires
	// on_postload_ioc_update for every module (webhooks, VirusTotal...).
	TabMinInterval Duration `yaml:"tab_min_interval"`
	// Settle is how long a write waits after a request whose answer was lost
	// (timeout, dropped connection, 504) before it looks for what that
	// request may have created or changed: at least IRIS's worker timeout.
	Settle       Duration `yaml:"settle"`
	TemplatesDir string   `yaml:"templates_dir"`
	// Concurrency is the most IRIS write requests in flight. velohunt
	// lowers it by itself while IRIS answers 429/503 or slows down.
	Concurrency int `yaml:"concurrency"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// IRIS configures the DFIR-IRIS REST client.
type IRIS struct {
	URL                string   `yaml:"url"`
	APIKey             Secret   `yaml:"api_key"`
	APIKeyFile         string   `yaml:"api_key_file"`
	CAFile             string   `yaml:"ca_file"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
	Timeout            Duration `yaml:"timeout"`
	// ServiceUserID is velohunt's own IRIS user id; events caused by it are
	// ignored. 0 means: ask IRIS at start-up.
	ServiceUserID int64 `yaml:"service_user_id"`
	// AdminAPIKey is only needed by `velohunt setup` (and by serve when
	// SetupOnStart is set, or to repair IOCs with null attributes).
	AdminAPIKey     Secret `yaml:"admin_api_key"`
	AdminAPIKeyFile string `yaml:"admin_api_key_file"`
	SetupOnStart    bool   `yaml:"setup_on_start"`
}

// Webhook configures the endpoint that IRIS's webhooks module calls.
type Webhook struct {
	Path         string `yaml:"path"`
	Secret       Secret `yaml:"secret"`
	SecretFile   string `yaml:"secret_file"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	// RateLimit bounds webhook requests per second (burst: twice as many).
	RateLimit float64 `yaml:"rate_limit"`
}

// Velociraptor lists the servers and the routing of cases to them.
type Velociraptor struct {
	Servers []Server `yaml:"servers"`
	Routes  []Route  `yaml:"routes"`
	Default Target   `yaml:"default"`
	// CaseAttribute names a case custom attribute whose value,
	// "server" or "server/org", overrides the routes for that case.
	CaseAttribute CaseAttribute `yaml:"case_attribute"`
}

// CaseAttribute is a case custom attribute (tab and field).
type CaseAttribute struct {
	Tab   string `yaml:"tab"`
	Field string `yaml:"field"`
}

// Server is one Velociraptor server reached through its gRPC API.
type Server struct {
	Name string `yaml:"name"`
	// APIConfig is the path of the file written by
	// `velociraptor config api_client --name velohunt api.config.yaml`.
	APIConfig string   `yaml:"api_config"`
	GUIURL    string   `yaml:"gui_url"`
	Timeout   Duration `yaml:"timeout"`
	Limits    Limits   `yaml:"limits"`
	// Parameters override artifact parameters for this server's hunts, by
	// IOC kind (hash, ip, domain, file): for example
	// {hash: {UseIndex: "N"}} for a fleet where nothing may be written.
	Parameters map[string]map[string]string `yaml:"parameters"`
	// Scope limits every hunt on this server to some clients (labels to
	// exclude, for instance velohunt-exclude on fragile hosts).
	Scope Scope `yaml:"scope"`
}

// IOC is the scope as hunts take it.
func (s Scope) IOC() ioc.Scope {
	return ioc.Scope{IncludeLabels: s.IncludeLabels, ExcludeLabels: s.ExcludeLabels, OS: s.OS}
}

// Scope limits hunts to some of a server's clients by their Velociraptor
// labels and OS. A kind's scope narrows its server's: excluded labels add
// up, and the kind's included labels and OS, when set, replace the
// server's. Velociraptor 0.77.2's hunt() drops every label condition when
// an OS is set, so a hunt's scope has labels or an OS, not both.
type Scope struct {
	// IncludeLabels: only clients with one of these labels.
	IncludeLabels []string `yaml:"include_labels"`
	// ExcludeLabels: never a client with one of these labels.
	ExcludeLabels []string `yaml:"exclude_labels"`
	// OS: only clients of this OS (windows, linux or darwin).
	OS string `yaml:"os"`
}

// Limits protect a server's fleet. Zero means no limit (or, for the last
// three, the hunting section's value).
type Limits struct {
	// MaxActiveHunts bounds hunts still running on clients at once.
	MaxActiveHunts  int `yaml:"max_active_hunts"`
	MaxHuntsPerHour int `yaml:"max_hunts_per_hour"`
	MaxIOCsPerHunt  int `yaml:"max_iocs_per_hunt"`
	CPULimit        int `yaml:"cpu_limit"`
	OpsPerSecond    int `yaml:"ops_per_second"`
	// ClientTimeout bounds the artifact's run on each endpoint of this
	// server (0: hunting.client_timeout).
	ClientTimeout Duration `yaml:"client_timeout"`
	// Follow-up collections on hits (0: the default): in flight at once
	// (4), per client per day (5), bytes uploaded per day (2 GiB).
	CollectInFlight      int   `yaml:"collect_in_flight"`
	CollectPerHostPerDay int   `yaml:"collect_per_host_per_day"`
	CollectBytesPerDay   int64 `yaml:"collect_bytes_per_day"`
}

// Target is a server and an org.
type Target struct {
	Server string `yaml:"server"`
	Org    string `yaml:"org"`
}

// Route sends the cases it matches to a server and org. Exactly one of
// Customer, Tag and CaseID is set; the first matching route wins.
type Route struct {
	Customer string `yaml:"customer"`
	Tag      string `yaml:"tag"`
	CaseID   int64  `yaml:"case_id"`
	Server   string `yaml:"server"`
	Org      string `yaml:"org"`
	// Scope limits the hunts of the cases it routes to some clients of
	// the server (a customer's hosts, by label, for instance).
	Scope Scope `yaml:"scope"`
	// Collect: false starts no follow-up collection for these cases.
	Collect *bool `yaml:"collect"`
}

// Hunting configures how IOCs become hunts.
type Hunting struct {
	// BatchWindow is how long IOCs of one kind are gathered into one hunt.
	BatchWindow Duration `yaml:"batch_window"`
	// BatchMaxWait bounds how long a queued IOC waits for its batch to fill
	// while IOCs keep arriving.
	BatchMaxWait   Duration `yaml:"batch_max_wait"`
	MaxIOCsPerHunt int      `yaml:"max_iocs_per_hunt"`
	Expiry         Duration `yaml:"expiry"`
	// ClientTimeout bounds the artifact's run on each endpoint.
	ClientTimeout Duration `yaml:"client_timeout"`
	CPULimit      int      `yaml:"cpu_limit"`
	OpsPerSecond  int      `yaml:"ops_per_second"`
	// UploadArtifacts uploads templates/artifacts at start-up when they changed.
	UploadArtifacts bool               `yaml:"upload_artifacts"`
	ArtifactsDir    string             `yaml:"artifacts_dir"`
	Kinds           map[string]KindArt `yaml:"kinds"`
}

// KindArt names the artifact a kind is hunted with.
type KindArt struct {
	Artifact string `yaml:"artifact"`
	// Parameter receives the list of hunt values.
	Parameter string `yaml:"parameter"`
	// Format of that list: json (a JSON array), lines (one per line),
	// csv (comma separated) or regex (escaped values joined with "|").
	Format string `yaml:"format"`
	// Parameters are extra artifact parameters, passed as given.
	Parameters map[string]string `yaml:"parameters"`
	// Scope limits this kind's hunts to some clients, within each server's
	// scope.
	Scope Scope `yaml:"scope"`
	// Collect is what a hit of this kind collects from its client (nothing
	// by default).
	Collect CollectKind `yaml:"collect"`
}

// Intake configures how IOCs are learned.
type Intake struct {
	// Reconcile is a cron spec for the full sync of open cases' IOCs.
	Reconcile string `yaml:"reconcile"`
	TimeZone  string `yaml:"time_zone"`
	// SyncDelay gathers webhook events before one sync runs.
	SyncDelay Duration `yaml:"sync_delay"`
	// FullSyncEvery is how often a reconcile lists the IOCs of every open
	// case; in between it lists only the cases whose IOC counter moved.
	FullSyncEvery Duration `yaml:"full_sync_every"`
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		Database: "velohunt.db",
		Listen:   "127.0.0.1:8080",
		Log:      Log{Level: "info", Format: "text"},
		IRIS:     IRIS{Timeout: Duration(30 * time.Second)},
		Webhook:  Webhook{Path: "/iris/webhook", MaxBodyBytes: 4 << 20, RateLimit: 50},
		Hunting: Hunting{
			BatchWindow:    Duration(5 * time.Second),
			BatchMaxWait:   Duration(time.Minute),
			MaxIOCsPerHunt: 500,
			Expiry:         Duration(7 * 24 * time.Hour),
			// From BENCHMARKS.md ("Hash hunts on a real client"): a first
			// hash hunt costs about 0.3 ms of CPU per file (31 s for
			// 112,000 files), a re-hunt from the index half of that. At
			// half a core, a first hunt of 500,000 files fits in 30
			// minutes, and users do not notice it.
			ClientTimeout:   Duration(30 * time.Minute),
			CPULimit:        50,
			UploadArtifacts: true,
			ArtifactsDir:    "templates/artifacts",
			Kinds:           DefaultKinds(),
		},
		Collect: Collect{Timeout: Duration(DefaultCollectTimeout), Expire: Duration(DefaultCollectExpire), EvidenceType: DefaultCollectEvidenceType,
			NeverPaths: DefaultNeverPaths()},
		Intake:  Intake{Reconcile: "*/5 * * * *", TimeZone: "UTC", SyncDelay: Duration(2 * time.Second), FullSyncEvery: Duration(time.Hour)},
		Watcher: Watcher{Schedule: "@every 30s", WatchFlows: true},
		Writeback: Writeback{
			TabName:               "Velociraptor hunt",
			EventPer:              "hit",
			EventCategory:         "Unspecified",
			EventColor:            "#F2596199",
			AssetAnalysisStatus:   "To be done",
			AssetCompromiseStatus: "To be determined",
			AssetTypes:            DefaultAssetTypes(),
			MaxHitsOnTab:          50,
			TabMinInterval:        Duration(5 * time.Minute),
			Settle:                Duration(3 * time.Minute),
			TemplatesDir:          "templates/iris",
			Concurrency:           4,
		},
	}
}

// DefaultAssetTypes maps an endpoint's OS to an IRIS asset type name.
func DefaultAssetTypes() map[string]string {
	return map[string]string{"windows": "Windows - Computer", "windows_server": "Windows - Server",
		"linux": "Linux - Server", "darwin": "Mac - Computer", "default": "Linux - Computer"}
}

// DefaultKinds maps each hunt kind to velohunt's own artifact.
func DefaultKinds() map[string]KindArt {
	return map[string]KindArt{
		string(ioc.KindHash):   {Artifact: "Custom.Velohunt.Hash", Parameter: "IOCs", Format: "json"},
		string(ioc.KindIP):     {Artifact: "Custom.Velohunt.Network", Parameter: "IOCs", Format: "json"},
		string(ioc.KindDomain): {Artifact: "Custom.Velohunt.Domain", Parameter: "IOCs", Format: "json"},
		string(ioc.KindFile):   {Artifact: "Custom.Velohunt.File", Parameter: "IOCs", Format: "json"},
	}
}

// Load reads the file at path, applies environment overrides and validates.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML onto the defaults, refusing unknown keys, then reads
// secrets from files and the environment and validates the result.
func Parse(r io.Reader) (Config, error) {
	c := Default()
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	kinds := c.Hunting.Kinds
	c.Hunting.Kinds = nil
	if err := decode(data, &c); err != nil {
		return Config{}, err
	}
	// Kinds the file leaves out keep their default artifact, and so do
	// kinds it names without an artifact (to set a scope or a collection).
	for k, v := range kinds {
		if got, ok := c.Hunting.Kinds[k]; ok && got.Artifact == "" {
			got.Artifact, got.Parameter, got.Format = v.Artifact, v.Parameter, v.Format
			c.Hunting.Kinds[k] = got
		}
		if _, ok := c.Hunting.Kinds[k]; !ok {
			if c.Hunting.Kinds == nil {
				c.Hunting.Kinds = map[string]KindArt{}
			}
			c.Hunting.Kinds[k] = v
		}
	}
	if err := c.loadSecrets(); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c *Config) loadSecrets() error {
	if err := loadSecret(&c.IRIS.APIKey, c.IRIS.APIKeyFile, EnvIRISAPIKey, "iris.api_key_file"); err != nil {
		return err
	}
	if err := loadSecret(&c.IRIS.AdminAPIKey, c.IRIS.AdminAPIKeyFile, EnvIRISAdminAPIKey, "iris.admin_api_key_file"); err != nil {
		return err
	}
	return loadSecret(&c.Webhook.Secret, c.Webhook.SecretFile, EnvWebhookSecret, "webhook.secret_file")
}

// loadSecret fills s from the environment variable (first) or the file.
func loadSecret(s *Secret, file, env, field string) error {
	if v := os.Getenv(env); v != "" {
		*s = Secret(strings.TrimSpace(v))
		return nil
	}
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return &FieldError{Field: field, Err: fmt.Errorf("read secret: %w", err)}
	}
	*s = Secret(strings.TrimSpace(string(b)))
	return nil
}

// Server returns the server with the given name.
func (c *Config) Server(name string) (Server, bool) {
	for _, s := range c.Velociraptor.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// Duration is a time.Duration written as "5s", "10m", "168h" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Secret is a string that never prints its value.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML prints the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the secret value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// Route returns the Velociraptor server and org of a case: the case's own
// override attribute when set and naming a known server, else the first
// route whose customer, tag or case id matches, else the default.
func (c *Config) Route(cs ioc.Case) ioc.Route {
	if r, ok, _ := c.CaseOverride(cs); ok {
		return r
	}
	for _, r := range c.Velociraptor.Routes {
		switch {
		case r.CaseID != 0 && r.CaseID == cs.ID,
			r.Customer != "" && strings.EqualFold(r.Customer, cs.Customer),
			r.Tag != "" && hasTag(cs.Tags, r.Tag):
			return ioc.Route{Server: r.Server, Org: r.Org, Scope: r.Scope.IOC().Encode(), NoCollect: r.Collect != nil && !*r.Collect}
		}
	}
	return ioc.Route{Server: c.Velociraptor.Default.Server, Org: c.Velociraptor.Default.Org}
}

// CaseOverride reads the case's routing attribute. It reports false when
// the case has none, and an error when its value names no configured server.
func (c *Config) CaseOverride(cs ioc.Case) (ioc.Route, bool, error) {
	a := c.Velociraptor.CaseAttribute
	if a.Tab == "" {
		return ioc.Route{}, false, nil
	}
	v := strings.TrimSpace(cs.Custom[a.Tab][a.Field])
	if v == "" {
		return ioc.Route{}, false, nil
	}
	server, org, _ := strings.Cut(v, "/")
	if _, ok := c.Server(server); !ok {
		return ioc.Route{}, false, fmt.Errorf("case %d: %s/%s = %q names no configured Velociraptor server", cs.ID, a.Tab, a.Field, v)
	}
	return ioc.Route{Server: server, Org: org}, true, nil
}

// NeedCaseDetails reports whether routing reads what only a single case's
// details carry (tags, custom attributes), not the case list.
func (c *Config) NeedCaseDetails() bool {
	if c.Velociraptor.CaseAttribute.Tab != "" {
		return true
	}
	for _, r := range c.Velociraptor.Routes {
		if r.Tag != "" {
			return true
		}
	}
	return false
}

func hasTag(tags []string, t string) bool {
	for _, x := range tags {
		if strings.EqualFold(strings.TrimSpace(x), t) {
			return true
		}
	}
	return false
}

// Targets lists every server and org a case can be routed to.
func (c *Config) Targets() []ioc.Route {
	seen := map[ioc.Route]bool{}
	var out []ioc.Route
	add := func(r ioc.Route) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	add(ioc.Route{Server: c.Velociraptor.Default.Server, Org: c.Velociraptor.Default.Org})
	for _, r := range c.Velociraptor.Routes {
		add(ioc.Route{Server: r.Server, Org: r.Org})
	}
	return out
}
