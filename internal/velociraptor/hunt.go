package velociraptor

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// HuntRequest describes a hunt to create.
type HuntRequest struct {
	Org         string
	Artifact    string
	Description string
	Tags        []string
	// Params are the artifact's parameters; values are strings, as
	// Velociraptor stores them.
	Params        map[string]string
	Expires       time.Duration // from now
	ClientTimeout time.Duration
	CPULimit      int
	OpsPerSecond  int
	// The hunt's scope: only clients with one of IncludeLabels (all when
	// empty), never one with an ExcludeLabels label, only clients of OS
	// (windows, linux or darwin; all when empty). Velociraptor 0.77.2's
	// hunt() drops every label condition when an OS is set, so OS goes
	// with no label (CreateHunt refuses both).
	IncludeLabels []string
	ExcludeLabels []string
	OS            string
}

// Version returns the server's version. It doubles as a connectivity and
// permission check (it needs ANY_QUERY).
func (c *Client) Version(ctx context.Context, org string) (string, error) {
	rows, err := c.rows(ctx, call{name: "version", text: vqlVersion, org: org})
	if err != nil {
		return "", err
	}
	var v struct{ Version string }
	if len(rows) == 0 || json.Unmarshal(rows[0], &v) != nil || v.Version == "" {
		return "", fmt.Errorf("velociraptor version: %w", ioc.Errorf(ioc.EINTERNAL, "no version in the answer"))
	}
	return v.Version, nil
}

// CreateHunt creates a paused hunt and returns its id. A null hunt() (the
// server logs why) is an error.
func (c *Client) CreateHunt(ctx context.Context, r HuntRequest) (string, error) {
	spec, err := json.Marshal(map[string]map[string]string{r.Artifact: r.Params})
	if err != nil {
		return "", fmt.Errorf("create hunt: %w", err)
	}
	tags, err := json.Marshal(r.Tags)
	if err != nil {
		return "", fmt.Errorf("create hunt: %w", err)
	}
	switch r.OS {
	case "", "windows", "linux", "darwin":
	default:
		return "", ioc.Errorf(ioc.EINVALID, "create hunt: OS %q: want windows, linux or darwin", r.OS)
	}
	if r.OS != "" && len(r.IncludeLabels)+len(r.ExcludeLabels) > 0 {
		return "", ioc.Errorf(ioc.EINVALID, "create hunt: an OS and labels together: Velociraptor's hunt() then drops the labels")
	}
	include, _ := json.Marshal(nonNil(r.IncludeLabels))
	exclude, _ := json.Marshal(nonNil(r.ExcludeLabels))
	expires := int64(r.Expires / time.Second)
	if expires < 60 {
		expires = 60
	}
	env := map[string]string{
		"VhArtifact":      r.Artifact,
		"VhDescription":   r.Description,
		"VhTags":          string(tags),
		"VhSpec":          string(spec),
		"VhExpirySeconds": strconv.FormatInt(expires, 10),
		"VhTimeout":       strconv.FormatInt(int64(r.ClientTimeout/time.Second), 10),
		"VhCPULimit":      strconv.Itoa(r.CPULimit),
		"VhOpsPerSec":     strconv.Itoa(r.OpsPerSecond),
		"VhInclude":       string(include),
		"VhExclude":       string(exclude),
		"VhOS":            r.OS,
	}
	rows, err := c.rows(ctx, call{name: "create-hunt", text: vqlCreateHunt, env: env, org: r.Org})
	if err != nil {
		return "", err
	}
	return huntIDFrom("create hunt", rows)
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func huntIDFrom(op string, rows []json.RawMessage) (string, error) {
	var v struct{ HuntId *string }
	if len(rows) == 0 || json.Unmarshal(rows[0], &v) != nil || v.HuntId == nil || *v.HuntId == "" {
		return "", fmt.Errorf("%s: %w", op, ioc.Errorf(ioc.EINTERNAL, "the server returned no hunt id"))
	}
	return *v.HuntId, nil
}

// StartHunt starts a paused hunt: every connected client joins within
// seconds, instead of at its next foreman check-in.
func (c *Client) StartHunt(ctx context.Context, org, huntID string) error {
	rows, err := c.rows(ctx, call{name: "start-hunt", text: vqlStartHunt, env: map[string]string{"VhHuntId": huntID}, org: org})
	if err != nil {
		return err
	}
	_, err = huntIDFrom("start hunt "+huntID, rows)
	return err
}

// StopHunt stops a hunt; clients that have not run it yet never will.
func (c *Client) StopHunt(ctx context.Context, org, huntID string) error {
	rows, err := c.rows(ctx, call{name: "stop-hunt", text: vqlStopHunt, env: map[string]string{"VhHuntId": huntID}, org: org})
	if err != nil {
		return err
	}
	_, err = huntIDFrom("stop hunt "+huntID, rows)
	return err
}

// FindHuntByTag returns the id and state of the hunt carrying the tag, or
// ENOTFOUND.
func (c *Client) FindHuntByTag(ctx context.Context, org, tag string) (id, state string, err error) {
	rows, err := c.rows(ctx, call{name: "find-hunt", text: vqlFindHuntByTag, env: map[string]string{"VhMarker": tag}, org: org})
	if err != nil {
		return "", "", err
	}
	for _, r := range rows {
		var v struct {
			HuntID string `json:"hunt_id"`
			State  string `json:"state"`
		}
		if json.Unmarshal(r, &v) == nil && v.HuntID != "" {
			return v.HuntID, v.State, nil
		}
	}
	return "", "", ioc.Errorf(ioc.ENOTFOUND, "no hunt tagged %s", tag)
}

// SetArtifact uploads an artifact definition (YAML) and returns its name.
func (c *Client) SetArtifact(ctx context.Context, org, definition string) (string, error) {
	rows, err := c.rows(ctx, call{name: "artifact-set", text: vqlSetArtifact, env: map[string]string{"VhDefinition": definition}, org: org})
	if err != nil {
		return "", err
	}
	var v struct{ Name *string }
	if len(rows) == 0 || json.Unmarshal(rows[0], &v) != nil || v.Name == nil {
		return "", fmt.Errorf("artifact_set: %w", ioc.Errorf(ioc.EINVALID, "the server refused the artifact definition"))
	}
	return *v.Name, nil
}

// Artifacts returns the stored YAML of the named artifacts that exist on the
// server (name → raw definition; raw may be "" on servers that omit it).
func (c *Client) Artifacts(ctx context.Context, org string, names []string) (map[string]string, error) {
	list, err := json.Marshal(names)
	if err != nil {
		return nil, fmt.Errorf("artifact definitions: %w", err)
	}
	rows, err := c.rows(ctx, call{name: "artifact-definitions", text: vqlGetArtifacts, env: map[string]string{"VhNames": string(list)}, org: org})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range rows {
		var v struct {
			Name string `json:"name"`
			Raw  string `json:"raw"`
		}
		if json.Unmarshal(r, &v) == nil && v.Name != "" {
			out[v.Name] = v.Raw
		}
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
