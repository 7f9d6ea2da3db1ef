package config

import (
	"fmt"
	"path"
	"regexp"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Collect configures the follow-up collections velohunt starts on a hit's
// client: what is collected is set per kind (hunting.kinds.<kind>.collect)
// and is nothing unless set; a routing rule may turn them off for its
// cases (velociraptor.routes[].collect: false); each server bounds them
// (velociraptor.servers[].limits.collect_*).
type Collect struct {
	// Timeout bounds the collection's run on the client (default 10m).
	Timeout Duration `yaml:"timeout"`
	// Expire is how long velohunt waits for a collection to end (the client
	// may be offline) before it cancels the flow and records the failure
	// (default 24h). Nothing is retried after that.
	Expire Duration `yaml:"expire"`
	// EvidenceType is the IRIS evidence type of the records velohunt adds
	// (default "Unspecified").
	EvidenceType string `yaml:"evidence_type"`
	// NeverPaths are files never uploaded, whatever IOC matched them
	// (path.Match patterns, case-insensitive, "/" for "\\"; "*" does not
	// cross a folder): credential stores a path IOC typed into IRIS could
	// otherwise pull into Velociraptor. Setting it replaces the defaults.
	NeverPaths []string `yaml:"never_paths"`
	// IRISDatastoreMaxBytes, when above 0, also stores a copy of each
	// collected file of at most this size in the case's IRIS datastore
	// (folder "velohunt", in a zip with the password "infected"), read
	// back from Velociraptor and checked against the client's SHA-256.
	// 0 (the default) keeps the bytes in Velociraptor only.
	IRISDatastoreMaxBytes int64 `yaml:"iris_datastore_max_bytes"`
}

// DefaultNeverPaths are the credential stores velohunt never uploads.
func DefaultNeverPaths() []string {
	return []string{"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd",
		"/etc/ssh/ssh_host_*_key", "/root/.ssh/id_*", "/home/*/.ssh/id_*", "/etc/krb5.keytab",
		"C:/Windows/System32/config/*", "C:/Windows/System32/config/RegBack/*", "C:/Windows/NTDS/*",
		"C:/Users/*/AppData/Roaming/Microsoft/Protect/*/*", "C:/Users/*/NTUSER.DAT"}
}

// CollectKind is what a hit of one kind collects.
type CollectKind struct {
	// File uploads the matched file itself (hash and file kinds), with
	// velohunt's artifact Custom.Velohunt.Collect.
	File bool `yaml:"file"`
	// MaxBytes caps that file (default 100 MiB): a larger one is not
	// uploaded, and the tab and the event say so.
	MaxBytes int64 `yaml:"max_bytes"`
	// Artifacts are more artifacts collected in the same flow, with their
	// parameters (passed as values, never as VQL).
	Artifacts []CollectArtifact `yaml:"artifacts"`
}

// On reports whether a hit of the kind collects anything.
func (k CollectKind) On() bool { return k.File || len(k.Artifacts) > 0 }

// CollectArtifact is an artifact a follow-up collection runs.
type CollectArtifact struct {
	Name       string            `yaml:"name"`
	Parameters map[string]string `yaml:"parameters"`
}

// Defaults of follow-up collections.
const (
	DefaultCollectInFlight      = 4
	DefaultCollectPerHostPerDay = 5
	DefaultCollectBytesPerDay   = 2 << 30
	DefaultCollectTimeout       = 10 * time.Minute
	DefaultCollectExpire        = 24 * time.Hour
	DefaultCollectEvidenceType  = "Unspecified"
	// MaxIRISDatastoreBytes bounds collect.iris_datastore_max_bytes: the
	// copy is held in memory, and sent to IRIS in one request.
	MaxIRISDatastoreBytes = 50 << 20
)

// artifactName is what Velociraptor accepts as an artifact name.
var artifactName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)

// Collecting reports whether any kind collects on a hit.
func (c *Config) Collecting() bool {
	for _, k := range c.Hunting.Kinds {
		if k.Collect.On() {
			return true
		}
	}
	return false
}

// CollectLimits are a server's bounds on follow-up collections, with the
// defaults filled in.
func (l Limits) CollectLimits() (inFlight, perHostPerDay int, bytesPerDay int64) {
	inFlight, perHostPerDay, bytesPerDay = l.CollectInFlight, l.CollectPerHostPerDay, l.CollectBytesPerDay
	if inFlight == 0 {
		inFlight = DefaultCollectInFlight
	}
	if perHostPerDay == 0 {
		perHostPerDay = DefaultCollectPerHostPerDay
	}
	if bytesPerDay == 0 {
		bytesPerDay = DefaultCollectBytesPerDay
	}
	return inFlight, perHostPerDay, bytesPerDay
}

func (c *Config) validateCollect() error {
	if c.Collect.Timeout < Duration(10*time.Second) {
		return fieldErr("collect.timeout", "must be at least 10s")
	}
	if c.Collect.Expire < c.Collect.Timeout {
		return fieldErr("collect.expire", "must be at least collect.timeout (%v)", c.Collect.Timeout)
	}
	if c.Collect.EvidenceType == "" {
		return &FieldError{Field: "collect.evidence_type", Err: ErrMissing}
	}
	if n := c.Collect.IRISDatastoreMaxBytes; n < 0 || n > MaxIRISDatastoreBytes {
		return fieldErr("collect.iris_datastore_max_bytes", "must be between 0 (off) and %d (50 MiB)", MaxIRISDatastoreBytes)
	}
	for i, p := range c.Collect.NeverPaths {
		if _, err := path.Match(p, ""); err != nil {
			return fieldErr(fmt.Sprintf("collect.never_paths[%d]", i), "%q is not a path pattern: %v", p, err)
		}
	}
	for name, k := range c.Hunting.Kinds {
		f := "hunting.kinds." + name + ".collect"
		kind := ioc.Kind(name)
		if k.Collect.File && kind != ioc.KindHash && kind != ioc.KindFile {
			return fieldErr(f+".file", "only hash and file hits match a file (a %s hit names no file to upload)", name)
		}
		if k.Collect.MaxBytes < 0 {
			return fieldErr(f+".max_bytes", "must not be negative")
		}
		for i, a := range k.Collect.Artifacts {
			if !artifactName.MatchString(a.Name) {
				return fieldErr(fmt.Sprintf("%s.artifacts[%d].name", f, i), "%q is not an artifact name", a.Name)
			}
		}
	}
	for i, s := range c.Velociraptor.Servers {
		l := s.Limits
		if l.CollectInFlight < 0 || l.CollectPerHostPerDay < 0 || l.CollectBytesPerDay < 0 {
			return fieldErr(fmt.Sprintf("velociraptor.servers[%d].limits", i), "collect_in_flight, collect_per_host_per_day and collect_bytes_per_day must not be negative (0: the default)")
		}
	}
	return nil
}
