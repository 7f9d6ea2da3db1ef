package velociraptor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// HuntInfo is the progress of a hunt, from hunts().
type HuntInfo struct {
	ID              string
	State           string // PAUSED, RUNNING, STOPPED, ARCHIVED, DELETED
	Expires         time.Time
	Scheduled       int64
	Finished        int64
	WithErrors      int64
	Rows            int64
	ArtifactSources []string
	// Tags are the hunt's tags: velohunt's hunts carry "velohunt" and
	// their marker.
	Tags []string
}

// HuntInfo reads a hunt's state and stats. Returns ENOTFOUND when the server
// does not know the hunt.
func (c *Client) HuntInfo(ctx context.Context, org, huntID string) (HuntInfo, error) {
	rows, err := c.rows(ctx, call{name: "hunt-info", text: vqlHuntInfo, env: map[string]string{"VhHuntId": huntID}, org: org})
	if err != nil {
		return HuntInfo{}, err
	}
	if len(rows) == 0 {
		return HuntInfo{}, ioc.Errorf(ioc.ENOTFOUND, "hunt %s not found", huntID)
	}
	var v struct {
		HuntID  string  `json:"hunt_id"`
		State   string  `json:"state"`
		Expires jsonInt `json:"expires"` // µs
		Stats   struct {
			Scheduled  jsonInt `json:"total_clients_scheduled"`
			Finished   jsonInt `json:"total_finished_clients"`
			WithErrors jsonInt `json:"total_clients_with_errors"`
			Rows       jsonInt `json:"total_collected_rows"`
		} `json:"stats"`
		Sources []string `json:"artifact_sources"`
		Tags    []string `json:"tags"`
	}
	if err := json.Unmarshal(rows[0], &v); err != nil {
		return HuntInfo{}, fmt.Errorf("hunt info %s: %w", huntID, err)
	}
	return HuntInfo{ID: v.HuntID, State: v.State, Expires: time.UnixMicro(int64(v.Expires)).UTC(),
		Scheduled: int64(v.Stats.Scheduled), Finished: int64(v.Stats.Finished), WithErrors: int64(v.Stats.WithErrors),
		Rows: int64(v.Stats.Rows), ArtifactSources: v.Sources, Tags: v.Tags}, nil
}

// Flow is one client's collection of a hunt, from hunt_flows().
type Flow struct {
	ClientID string
	FlowID   string
	State    string // RUNNING, WAITING, IN_PROGRESS, UNRESPONSIVE, FINISHED, ERROR
	Status   string // the error, when State is ERROR
	Rows     int64  // total_collected_rows
	// Created is the flow's create_time (µs). Relaunching a client in a
	// hunt (hunt_add(relaunch=TRUE)) makes a second flow for it, with a
	// new id: the newest flow says the client's state.
	Created int64
	// Index is the flow's row in the hunt's flow list.
	Index int64
}

// Done reports whether the flow ended (finished or failed).
func (f Flow) Done() bool { return f.State == "FINISHED" || f.State == "ERROR" }

// HuntFlows lists a hunt's flows: one per client that joined it, and one
// more per relaunch of a client.
func (c *Client) HuntFlows(ctx context.Context, org, huntID string) ([]Flow, error) {
	rows, err := c.rows(ctx, call{name: "hunt-flows", text: vqlHuntFlows, env: map[string]string{"VhHuntId": huntID}, org: org})
	if err != nil {
		return nil, err
	}
	return parseFlows(huntID, rows, 0)
}

// FlowsPage is the number of flows HuntFlowsFrom lists at most.
const FlowsPage = 1000

// HuntFlowsFrom lists up to FlowsPage of a hunt's flows, in the order they
// were scheduled (new flows, relaunches too, come last), from row start;
// each Flow's Index is its row. Listing loads each flow's details on the
// server, so a caller lists from the first flow that can have moved.
func (c *Client) HuntFlowsFrom(ctx context.Context, org, huntID string, start int64) ([]Flow, error) {
	rows, err := c.rows(ctx, call{name: "hunt-flows-page", text: vqlHuntFlowsPage,
		env: map[string]string{"VhHuntId": huntID, "VhStartRow": strconv.FormatInt(start, 10)}, org: org})
	if err != nil {
		return nil, err
	}
	return parseFlows(huntID, rows, start)
}

func parseFlows(huntID string, rows []json.RawMessage, start int64) ([]Flow, error) {
	out := make([]Flow, 0, len(rows))
	for _, r := range rows {
		var v struct {
			ClientID string `json:"ClientId"`
			FlowID   string `json:"FlowId"`
			Flow     struct {
				State   json.RawMessage `json:"state"`
				Status  string          `json:"status"`
				Rows    jsonInt         `json:"total_collected_rows"`
				Created jsonInt         `json:"create_time"`
			} `json:"Flow"`
		}
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("hunt flows %s: %w", huntID, err)
		}
		out = append(out, Flow{ClientID: v.ClientID, FlowID: v.FlowID, State: flowState(v.Flow.State), Status: v.Flow.Status, Rows: int64(v.Flow.Rows),
			Created: int64(v.Flow.Created), Index: start + int64(len(out))})
	}
	return out, nil
}

// flowState reads a FlowContext state: a string in 0.77 ("FINISHED",
// contract). Anything else reads as "", a flow not known to be done, which
// is read again from its cursor: never a missed row.
func flowState(raw json.RawMessage) string {
	var s string
	json.Unmarshal(raw, &s)
	return s
}

// FlowResults streams the rows of one client's flow of a hunt, of one
// artifact source ("Name" or "Name/Source"), from row startRow, and calls fn
// with each. Memory stays bounded whatever the number of rows.
func (c *Client) FlowResults(ctx context.Context, org, clientID, flowID, source string, startRow int64, fn func(json.RawMessage) error) error {
	artifact, src, _ := strings.Cut(source, "/")
	env := map[string]string{"VhClientId": clientID, "VhFlowId": flowID, "VhArtifact": artifact, "VhSource": src,
		"VhStartRow": strconv.FormatInt(startRow, 10)}
	return c.run(ctx, call{name: "flow-results", text: vqlFlowResults, env: env, org: org, stream: true, idle: true}, fn)
}

// ClientInfo describes an endpoint.
type ClientInfo struct {
	ClientID string
	Hostname string
	FQDN     string
	OS       string // windows, linux, darwin
	Release  string
	LastIP   string // address the server saw, without port
}

// ClientInfo looks up one client. Returns ENOTFOUND for an unknown client.
func (c *Client) ClientInfo(ctx context.Context, org, clientID string) (ClientInfo, error) {
	rows, err := c.rows(ctx, call{name: "client-info", text: vqlClientInfo, env: map[string]string{"VhClientId": clientID}, org: org})
	if err != nil {
		return ClientInfo{}, err
	}
	var v struct {
		Info *struct {
			ClientID string `json:"client_id"`
			OSInfo   struct {
				System   string `json:"system"`
				Hostname string `json:"hostname"`
				Release  string `json:"release"`
				FQDN     string `json:"fqdn"`
			} `json:"os_info"`
			LastIP string `json:"last_ip"`
		}
	}
	if len(rows) == 0 || json.Unmarshal(rows[0], &v) != nil || v.Info == nil || v.Info.ClientID == "" {
		return ClientInfo{}, ioc.Errorf(ioc.ENOTFOUND, "client %s not found", clientID)
	}
	i := v.Info
	return ClientInfo{ClientID: i.ClientID, Hostname: i.OSInfo.Hostname, FQDN: i.OSInfo.FQDN, OS: i.OSInfo.System,
		Release: i.OSInfo.Release, LastIP: stripPort(i.LastIP)}, nil
}

// VersionCount is how many clients of a server (and org) report a version.
type VersionCount struct {
	Version string // as the client reports it; "" when it was never interrogated
	Clients int64
}

// ClientVersions counts the clients of the org by the version they report
// (clients() grouped on the server). It touches no endpoint.
func (c *Client) ClientVersions(ctx context.Context, org string) ([]VersionCount, error) {
	rows, err := c.rows(ctx, call{name: "client-versions", text: vqlClientVersions, org: org})
	if err != nil {
		return nil, err
	}
	out := make([]VersionCount, 0, len(rows))
	for _, r := range rows {
		var v struct {
			Version json.RawMessage
			Clients jsonInt
		}
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("velociraptor client-versions: bad row: %w", err)
		}
		vc := VersionCount{Clients: int64(v.Clients)}
		if json.Unmarshal(v.Version, &vc.Version) != nil && string(v.Version) != "null" {
			vc.Version = string(v.Version) // not a string: shown as sent
		}
		out = append(out, vc)
	}
	return out, nil
}

// WatchHuntFlows streams the ids of completed hunt flows until ctx ends; fn
// gets the hunt id ("F.X.H" → "H.X") and the client id.
func (c *Client) WatchHuntFlows(ctx context.Context, org string, fn func(huntID, clientID string) error) error {
	return c.run(ctx, call{name: "watch-flows", text: vqlWatchFlowCompletion, org: org, stream: true}, func(r json.RawMessage) error {
		var v struct{ FlowId, ClientId string }
		if json.Unmarshal(r, &v) != nil {
			return nil
		}
		if id, ok := HuntIDOfFlow(v.FlowId); ok {
			return fn(id, v.ClientId)
		}
		return nil
	})
}

// HuntIDOfFlow maps a hunt flow id "F.X.H" to its hunt id "H.X".
func HuntIDOfFlow(flowID string) (string, bool) {
	if !strings.HasPrefix(flowID, "F.") || !strings.HasSuffix(flowID, ".H") || len(flowID) < 5 {
		return "", false
	}
	return "H." + flowID[2:len(flowID)-2], true
}

// stripPort turns "203.0.113.9:56222" or "[2001:db8::1]:443" into the address.
func stripPort(s string) string {
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "]"); i > 0 {
			return s[1:i]
		}
	}
	if strings.Count(s, ":") == 1 {
		return s[:strings.IndexByte(s, ':')]
	}
	return s
}

// jsonInt accepts a JSON number or a string holding one: protojson encodes
// uint64 as strings in some places, plain JSON as numbers in others.
type jsonInt int64

func (j *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*j = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not an integer: %s", s)
		}
		n = int64(f)
	}
	*j = jsonInt(n)
	return nil
}

// WhoAmI returns the API user's name and, when the server tells, its roles
// in the org (nil when the user record cannot be read).
func (c *Client) WhoAmI(ctx context.Context, org string) (string, []string, error) {
	rows, err := c.rows(ctx, call{name: "whoami", text: vqlWhoAmI, org: org})
	if err != nil && ioc.ErrorCode(err) != ioc.EPERMISSION {
		return "", nil, err
	}
	if len(rows) == 0 {
		return "", nil, err
	}
	var v struct {
		Name string
		User map[string]json.RawMessage
	}
	if jerr := json.Unmarshal(rows[0], &v); jerr != nil {
		return "", nil, fmt.Errorf("whoami: %w", jerr)
	}
	var roles []string
	for k, raw := range v.User {
		if strings.EqualFold(k, "roles") {
			json.Unmarshal(raw, &roles)
		}
	}
	return v.Name, roles, nil
}

// ProbeReadResults checks READ_RESULTS by reading one hunt of the list.
func (c *Client) ProbeReadResults(ctx context.Context, org string) error {
	_, err := c.rows(ctx, call{name: "probe-read-results", text: vqlProbeReadResults, org: org})
	return err
}
