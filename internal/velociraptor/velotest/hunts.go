package velotest

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// builtinArtifacts exist on every server without an upload.
var builtinArtifacts = map[string]bool{"Generic.Client.Info": true, "Generic.Detection.HashHunter": true, "Windows.System.DNSCache": true}

// Hunt is a simulated hunt.
type Hunt struct {
	ID          string
	Org         string
	Artifact    string
	Description string
	Tags        []string
	Params      map[string]string
	State       string // PAUSED, RUNNING, STOPPED
	Created     time.Time
	Expires     time.Time
	Timeout     int64
	CPULimit    int64
	OpsPerSec   int64
	// Scope: as 0.77.2's hunt() keeps it (an OS drops the labels).
	IncludeLabels, ExcludeLabels []string
	OS                           string
	Scheduled                    map[string]bool // client ids
	Finished                     map[string]bool
	Rows                         []json.RawMessage // every flow's rows, in the order they came
	Flows                        map[string]*Flow  // each client's newest flow, by client id
	flows                        []*Flow           // every flow, in the order they were made
	source                       *RowSource
}

// Flow is one client's collection of a hunt. Velociraptor gives every
// client's flow of hunt H.X the same id, F.X.H; a relaunch of the client in
// the hunt (hunt_add(relaunch=TRUE)) makes a flow with a new id of the
// plain collection form, F.X (0.77.2, vql/server/hunts/create.go).
type Flow struct {
	ClientID string
	FlowID   string
	Rows     []json.RawMessage
	State    string // FINISHED or ERROR; WAITING for a relaunch not completed
	Status   string // the error, for ERROR
	Created  time.Time
	// Relaunched flows (hunt_add(relaunch=TRUE)) count in the hunt's
	// stats as 0.77.2 counts them: scheduled and finished when added,
	// with the rows they had then (none), and never again.
	relaunched bool
	// done is the relaunched flow's end, applied by CompleteFlow.
	done *Flow
}

// RowSource generates a hunt's results instead of running the artifact on
// endpoints: Clients clients, whose ids ClientID gives, each with a finished
// flow of RowsPerClient rows, row j of client c made by Row(c, j).
// Benchmarks use it to serve millions of rows without holding them.
type RowSource struct {
	Clients       int
	RowsPerClient int
	ClientID      func(c int) string
	Row           func(c, j int) map[string]any

	byID map[string]int // client id → number, made by SetRowSource
}

// index returns the number of a client id.
func (r *RowSource) index(id string) (int, bool) {
	c, ok := r.byID[id]
	return c, ok
}

// SetRowSource makes hunts of the artifact, once started, serve generated rows.
func (s *Server) SetRowSource(artifact string, src RowSource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sources == nil {
		s.sources = map[string]RowSource{}
	}
	src.byID = make(map[string]int, src.Clients)
	for c := range src.Clients {
		src.byID[src.ClientID(c)] = c
	}
	s.sources[artifact] = src
}

// counts are the hunt's stats. Velociraptor's hunt dispatcher counts
// flows as they are scheduled and complete, and never takes one back, so a
// relaunched client counts twice, and an errored flow stays counted after
// its relaunch finished. (Modelled on the dispatcher's increment-only
// counters; a relaunch's effect on them was not measured on a real server.)
func (h *Hunt) counts() (scheduled, finished, rows int) {
	scheduled, finished, rows = len(h.flows), len(h.flows), len(h.Rows)
	for _, f := range h.flows {
		if f.relaunched {
			rows -= len(f.Rows)
		}
		if f.State == "IN_PROGRESS" {
			finished-- // a hung flow (Endpoint.Hang) never completes
		}
	}
	if h.source != nil {
		scheduled += h.source.Clients
		finished += h.source.Clients
		rows += h.source.Clients * h.source.RowsPerClient
	}
	return
}

// TotalRows is the number of result rows the hunt served, over every flow
// (generated ones included): what a reader of the hunt reads in the end.
func (h *Hunt) TotalRows() int {
	_, _, rows := h.counts()
	return rows
}

// errored counts the hunt's own flows that ended in error: a relaunched
// flow's end is not counted (0.77.2 counts only the completions of flows
// named after the hunt).
func (h *Hunt) errored() int {
	n := 0
	for _, f := range h.flows {
		if f.State == "ERROR" && !f.relaunched {
			n++
		}
	}
	return n
}

func flowIDOf(huntID string) string { return "F." + strings.TrimPrefix(huntID, "H.") + ".H" }

func newHuntID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "H." + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:13]
}

func (s *Server) createHunt(user string, env map[string]string, org string, out *responder) error {
	null := func() error { return out.rows([]json.RawMessage{json.RawMessage(`{"HuntId":null}`)}) }
	vals, ok := need(out, env, "VhArtifact", "VhDescription", "VhTags", "VhSpec", "VhExpirySeconds", "VhTimeout", "VhCPULimit", "VhOpsPerSec")
	if !ok {
		return null()
	}
	if !s.can(user, PermStartHunt) {
		out.log("hunt: PermissionDenied: Permission denied: [START_HUNT]")
		return null()
	}
	s.mu.Lock()
	failure := s.logOnHunt
	s.mu.Unlock()
	if failure != "" {
		out.log("%s", failure)
		return null()
	}
	artifact := vals[0]
	if !s.knownArtifact(artifact) {
		out.log("hunt: Unknown artifact %s", artifact)
		return null()
	}
	var tags []string
	if err := json.Unmarshal([]byte(vals[2]), &tags); err != nil {
		out.log("parse_json_array: %v", err)
		return null()
	}
	var spec map[string]map[string]any
	if err := json.Unmarshal([]byte(vals[3]), &spec); err != nil {
		out.log("parse_json: %v", err)
		return null()
	}
	params := map[string]string{}
	for name, p := range spec {
		if name != artifact {
			out.log("hunt: Parameter refers to an unknown artifact %s", name)
			return null()
		}
		for k, v := range p {
			str, ok := v.(string)
			if !ok {
				// Velociraptor turns every spec value into a string.
				b, _ := json.Marshal(v)
				str = string(b)
			}
			params[k] = str
		}
	}
	ints := make([]int64, 4)
	for i, v := range vals[4:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			out.log("int: %q is not an integer", v)
			return null()
		}
		ints[i] = n
	}
	if ints[0] <= 0 {
		out.log("hunt: expiry time in the past")
		return null()
	}
	var include, exclude []string
	json.Unmarshal([]byte(env["VhInclude"]), &include)
	json.Unmarshal([]byte(env["VhExclude"]), &exclude)
	os := env["VhOS"]
	switch os {
	case "", "windows", "linux", "darwin":
	default:
		out.log("hunt: OS condition invalid %v (should be linux, windows, darwin)", os)
		return null()
	}
	if os != "" {
		// 0.77.2 replaces the whole condition with the OS one.
		include, exclude = nil, nil
	}
	s.mu.Lock()
	h := &Hunt{ID: newHuntID(), Org: org, Artifact: artifact, Description: vals[1], Tags: tags, Params: params,
		State: "PAUSED", Created: time.Now(), Expires: time.Now().Add(time.Duration(ints[0]) * time.Second),
		Timeout: ints[1], CPULimit: ints[2], OpsPerSec: ints[3], Scheduled: map[string]bool{}, Finished: map[string]bool{},
		Flows: map[string]*Flow{}, IncludeLabels: include, ExcludeLabels: exclude, OS: os}
	s.hunts[h.ID] = h
	s.order = append(s.order, h.ID)
	s.mu.Unlock()
	return out.rows([]json.RawMessage{mustRow(map[string]string{"HuntId": h.ID})})
}

// covers reports whether the hunt's scope takes the endpoint in.
func (h *Hunt) covers(ep *Endpoint) bool {
	if h.OS != "" && ep.OS != h.OS {
		return false
	}
	for _, l := range h.ExcludeLabels {
		if slices.Contains(ep.Labels, l) {
			return false
		}
	}
	if len(h.IncludeLabels) == 0 {
		return true
	}
	for _, l := range h.IncludeLabels {
		if slices.Contains(ep.Labels, l) {
			return true
		}
	}
	return false
}

func (s *Server) knownArtifact(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, up := s.artifacts[name]
	return up || builtinArtifacts[name]
}

func (s *Server) updateHunt(user string, env map[string]string, org string, start bool, out *responder) error {
	vals, ok := need(out, env, "VhHuntId")
	if !ok || !s.can(user, PermStartHunt) {
		if ok {
			out.log("hunt_update: PermissionDenied: Permission denied: [START_HUNT]")
		}
		return out.rows([]json.RawMessage{json.RawMessage(`{"HuntId":null}`)})
	}
	s.mu.Lock()
	h, found := s.hunts[vals[0]]
	if found && h.Org != org {
		found = false
	}
	var done []flowDone
	if found {
		if start && h.State == "PAUSED" {
			h.State = "RUNNING"
			if src, ok := s.sources[h.Artifact]; ok {
				h.source = &src
			}
			// PAUSED→RUNNING makes every connected client join at once.
			for _, ep := range s.sortedEndpoints() {
				if ep.Online && ep.Org == h.Org && h.covers(ep) {
					done = append(done, s.runOn(h, ep))
				}
			}
		} else if !start {
			h.State = "STOPPED"
		}
	}
	s.mu.Unlock()
	s.notify(done)
	if !found {
		out.log("hunt_update: hunt %s not found", vals[0])
		return out.rows([]json.RawMessage{json.RawMessage(`{"HuntId":null}`)})
	}
	return out.rows([]json.RawMessage{mustRow(map[string]string{"HuntId": vals[0]})})
}

// runOn runs a hunt's artifact on one endpoint; s.mu is held. An endpoint
// with a FlowError ends its flow in ERROR with that status and no rows.
func (s *Server) runOn(h *Hunt, ep *Endpoint) flowDone {
	return s.runFlow(h, ep, flowIDOf(h.ID))
}

// runFlow runs a flow of a hunt on an endpoint; s.mu is held. An endpoint
// with a FlowError ends the flow in ERROR with that status, with the first
// FlowErrorRows rows the artifact yielded (a collection that timed out
// keeps what it had sent).
func (s *Server) runFlow(h *Hunt, ep *Endpoint, flowID string) flowDone {
	h.Scheduled[ep.ClientID] = true
	f := &Flow{ClientID: ep.ClientID, FlowID: flowID, Created: time.Now()}
	if n := len(h.flows); n > 0 && !f.Created.After(h.flows[n-1].Created) {
		f.Created = h.flows[n-1].Created.Add(time.Microsecond) // create times are distinct
	}
	s.collect(h, ep, f)
	h.Flows[ep.ClientID] = f
	h.flows = append(h.flows, f)
	if flowID != flowIDOf(h.ID) {
		s.flowHunts[flowID] = h.ID
	}
	return flowDone{flowID: flowID, clientID: ep.ClientID}
}

// collect runs the hunt's artifact on the endpoint, as it is now, into the
// flow: its rows and its state (ERROR with the endpoint's FlowError and the
// first FlowErrorRows rows, IN_PROGRESS for an endpoint that hangs). s.mu
// is held.
func (s *Server) collect(h *Hunt, ep *Endpoint, f *Flow) {
	f.State, f.Status, f.Rows = "FINISHED", "", nil
	if b, ok := s.behaviours[h.Artifact]; ok && ep.OS != "" {
		for _, row := range b(ep, h.Params) {
			row["FlowId"] = f.FlowID
			row["ClientId"] = ep.ClientID
			row["_OrgId"] = h.Org
			row["Fqdn"] = ep.FQDN
			f.Rows = append(f.Rows, mustRow(row))
		}
	}
	if ep.FlowError != "" {
		f.State, f.Status = "ERROR", ep.FlowError
		f.Rows = f.Rows[:min(len(f.Rows), ep.FlowErrorRows)]
	}
	if ep.Hang {
		f.State, f.Rows = "IN_PROGRESS", nil
	}
	h.Rows = append(h.Rows, f.Rows...)
	if !ep.Hang {
		h.Finished[ep.ClientID] = true
	}
}

// Relaunch relaunches a client in a hunt as an analyst does from the GUI,
// or hunt_add(client_id=, hunt_id=, relaunch=TRUE) in 0.77.2: a new flow
// with a new id (F.X, not F.X.H), WAITING until CompleteFlow ends it as
// the endpoint is then; the hunt's earlier flows of the client stay listed
// by hunt_flows(). As on 0.77.2 the hunt's stats count the new flow as
// scheduled and finished at once, with no rows, and its end moves no
// stat. It returns the new flow's id.
func (s *Server) Relaunch(huntID, clientID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hunts[huntID]
	ep, known := s.endpoints[clientID]
	if !ok || !known || h.Org != ep.Org {
		return "", fmt.Errorf("velotest: no hunt %s or client %s in its org", huntID, clientID)
	}
	f := &Flow{ClientID: clientID, FlowID: newFlowID(), State: "WAITING", Created: time.Now(), relaunched: true}
	if n := len(h.flows); n > 0 && !f.Created.After(h.flows[n-1].Created) {
		f.Created = h.flows[n-1].Created.Add(time.Microsecond)
	}
	h.flows = append(h.flows, f)
	h.Flows[clientID] = f
	s.flowHunts[f.FlowID] = h.ID
	return f.FlowID, nil
}

// CompleteFlow ends a relaunched flow: the artifact runs on the endpoint
// as it is now and the flow's rows appear.
func (s *Server) CompleteFlow(flowID string) error {
	s.mu.Lock()
	h, ok := s.hunts[s.flowHunts[flowID]]
	var f *Flow
	if ok {
		for _, x := range h.flows {
			if x.FlowID == flowID && x.relaunched && x.State == "WAITING" {
				f = x
			}
		}
	}
	if f == nil {
		s.mu.Unlock()
		return fmt.Errorf("velotest: no waiting relaunched flow %s", flowID)
	}
	s.collect(h, s.endpoints[f.ClientID], f)
	s.mu.Unlock()
	s.notify([]flowDone{{flowID: flowID, clientID: f.ClientID}})
	return nil
}

func newFlowID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "F." + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)[:13]
}

func (s *Server) findHunts(user string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhMarker")
	if !ok {
		return out.rows(nil)
	}
	if !s.can(user, PermReadResults) {
		out.log("hunts: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	s.mu.Lock()
	var rows []json.RawMessage
	for _, id := range s.order {
		h := s.hunts[id]
		for _, t := range h.Tags {
			if t == vals[0] && h.Org == org {
				rows = append(rows, mustRow(map[string]any{"hunt_id": h.ID, "state": h.State}))
			}
		}
	}
	s.mu.Unlock()
	return out.rows(rows)
}

func (s *Server) huntInfo(user string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhHuntId")
	if !ok {
		return out.rows(nil)
	}
	if !s.can(user, PermReadResults) {
		out.log("hunts: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	s.mu.Lock()
	h, found := s.hunts[vals[0]]
	var rows []json.RawMessage
	if found && h.Org == org {
		sched, fin, n := h.counts()
		rows = append(rows, mustRow(map[string]any{
			"hunt_id": h.ID, "state": h.State, "create_time": h.Created.UnixMicro(), "start_time": h.Created.UnixMicro(),
			"expires": h.Expires.UnixMicro(),
			"stats": map[string]any{"total_clients_scheduled": sched, "total_finished_clients": fin,
				"total_clients_with_results": fin, "total_clients_with_errors": h.errored(), "total_collected_rows": n,
				"stopped": h.State == "STOPPED"},
			"artifact_sources": []string{h.Artifact},
			"tags":             append([]string{}, h.Tags...),
		}))
	}
	s.mu.Unlock()
	return out.rows(rows)
}

// huntResults serves source(hunt_id=, artifact=, source=, start_row=) as
// Velociraptor 0.77.2 does: in hunt mode source() hands the query to
// hunt_results(), which has no start_row, so start_row is accepted and
// ignored and every row of every flow comes back, from the first.
func (s *Server) huntResults(user string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhHuntId", "VhArtifact", "VhSource", "VhStartRow")
	if !ok {
		return out.rows(nil)
	}
	if !s.can(user, PermReadResults) {
		out.log("source: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	name := vals[1]
	if vals[2] != "" {
		name += "/" + vals[2]
	}
	s.mu.Lock()
	h, found := s.hunts[vals[0]]
	var rows []json.RawMessage
	if found && h.Org == org {
		if h.Artifact != name {
			s.mu.Unlock()
			out.log("source: artifact %s not available in hunt. Available artifacts are %s", name, h.Artifact)
			return out.rows(nil)
		}
		rows = append(rows, h.Rows...)
	}
	var src *RowSource
	if found && h.source != nil {
		src = h.source
	}
	flow := ""
	if found {
		flow = flowIDOf(h.ID)
	}
	s.mu.Unlock()
	if src == nil {
		return out.rows(rows)
	}
	// Generated rows follow the stored ones, streamed in parts.
	if len(rows) > 0 {
		if err := out.send(rows); err != nil {
			return err
		}
	}
	for c := range src.Clients {
		if err := s.streamGenerated(out, src, c, 0, flow, org); err != nil {
			return err
		}
	}
	return out.send(nil)
}

// artifactColumns drops the columns hunt-wide reads add (ClientId, FlowId,
// _OrgId, Fqdn): a flow's own rows carry only the artifact's columns, as
// seen on a real 0.77.2 server.
func artifactColumns(r json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(r, &m) != nil {
		return r
	}
	for _, k := range []string{"ClientId", "FlowId", "_OrgId", "Fqdn"} {
		delete(m, k)
	}
	return mustRow(m)
}

// streamGenerated sends client c's generated rows from start, in parts;
// flow is "" for a flow's own rows (artifact columns only).
func (s *Server) streamGenerated(out *responder, src *RowSource, c, start int, flow, org string) error {
	part := make([]json.RawMessage, 0, max(out.maxRow, 1))
	for j := start; j < src.RowsPerClient; j++ {
		row := src.Row(c, j)
		if flow == "" {
			delete(row, "ClientId")
		} else {
			row["FlowId"], row["_OrgId"] = flow, org
		}
		part = append(part, mustRow(row))
		if len(part) == cap(part) {
			if err := out.send(part); err != nil {
				return err
			}
			part = part[:0]
		}
	}
	if len(part) > 0 {
		return out.send(part)
	}
	return nil
}

// vqlLimit finds a query's LIMIT clause.
var vqlLimit = regexp.MustCompile(`(?i)\bLIMIT\s+(\d+)\s*$`)

// FlowDetailsLoaded counts the flows whose details hunt_flows() loaded,
// over every call: the cost of listing a hunt's flows on a real server.
func (s *Server) FlowDetailsLoaded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flowLoads
}

// huntFlows serves hunt_flows(hunt_id=, start_row=): one row per flow, in
// the order clients were scheduled, with the FlowContext's state, status
// and row count.
func (s *Server) huntFlows(user, text string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhHuntId")
	if !ok {
		return out.rows(nil)
	}
	if !s.can(user, PermReadResults) {
		out.log("hunt_flows: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	s.mu.Lock()
	h, found := s.hunts[vals[0]]
	if !found || h.Org != org {
		s.mu.Unlock()
		return out.rows(nil)
	}
	row := func(client, flowID, state, status string, rows int, created time.Time) json.RawMessage {
		return mustRow(map[string]any{"HuntId": h.ID, "ClientId": client, "FlowId": flowID, "Flow": map[string]any{
			"client_id": client, "session_id": flowID, "state": state, "status": status,
			"total_collected_rows": rows, "create_time": created.UnixMicro()}})
	}
	// Every flow, a relaunched client's old ones too (seen on 0.77.2).
	// In schedule order: a generated hunt's clients all joined when it
	// started, before any endpoint that came online later.
	var rows []json.RawMessage
	src, created := h.source, h.Created
	if src != nil {
		for c := range src.Clients {
			rows = append(rows, row(src.ClientID(c), flowIDOf(h.ID), "FINISHED", "", src.RowsPerClient, created))
		}
	}
	for _, f := range h.flows {
		rows = append(rows, row(f.ClientID, f.FlowID, f.State, f.Status, len(f.Rows), f.Created))
	}
	// 0.77.2 honours start_row and ignores limit=; each row it emits loads
	// that flow's details from the datastore, until the query's LIMIT
	// stops the plugin.
	start := 0
	if v, ok := env["VhStartRow"]; ok {
		start, _ = strconv.Atoi(v)
	}
	rows = rows[min(max(start, 0), len(rows)):]
	if m := vqlLimit.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		rows = rows[:min(n, len(rows))]
	}
	s.flowLoads += len(rows)
	s.mu.Unlock()
	return out.rows(rows)
}

// flowResults serves source(client_id=, flow_id=, artifact=, source=,
// start_row=): one client's rows of a hunt, from start_row, which flow mode
// honours.
func (s *Server) flowResults(user string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhClientId", "VhFlowId", "VhArtifact", "VhSource", "VhStartRow")
	if !ok {
		return out.rows(nil)
	}
	if !s.can(user, PermReadResults) {
		out.log("source: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	start, _ := strconv.Atoi(vals[4])
	if found, err := s.collectionResults(vals, org, start, out); found || err != nil {
		return err
	}
	name := vals[2]
	if vals[3] != "" {
		name += "/" + vals[3]
	}
	huntID := "H." + strings.TrimSuffix(strings.TrimPrefix(vals[1], "F."), ".H")
	s.mu.Lock()
	if id, ok := s.flowHunts[vals[1]]; ok {
		huntID = id // a relaunched flow
	}
	h, found := s.hunts[huntID]
	if !found || h.Org != org {
		s.mu.Unlock()
		return out.rows(nil)
	}
	if h.Artifact != name {
		// Flow mode reads the flow's result file for that name: none, so
		// no row and no log.
		s.mu.Unlock()
		return out.rows(nil)
	}
	var rows []json.RawMessage
	for _, f := range h.flows {
		if f.ClientID == vals[0] && f.FlowID == vals[1] && start < len(f.Rows) {
			for _, r := range f.Rows[start:] {
				rows = append(rows, artifactColumns(r))
			}
		}
	}
	src := h.source
	s.mu.Unlock()
	if src != nil {
		if c, ok := src.index(vals[0]); ok {
			if err := s.streamGenerated(out, src, c, start, "", org); err != nil {
				return err
			}
		}
	}
	if len(rows) > 0 {
		if err := out.send(rows); err != nil {
			return err
		}
	}
	return out.send(nil)
}

func (s *Server) clientInfo(user string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhClientId")
	if !ok {
		return out.rows(nil)
	}
	s.mu.Lock()
	ep, found := s.endpoints[vals[0]]
	var info any
	if found && ep.Org == org {
		info = map[string]any{
			"client_id": ep.ClientID,
			"os_info": map[string]any{"system": ep.OS, "hostname": ep.Hostname, "release": ep.Release, "fqdn": ep.FQDN,
				"machine": "amd64"},
			"agent_information": map[string]any{"version": ep.reportedVersion(), "name": "velociraptor", "build_time": "", "build_url": ""},
			"last_ip":           ep.LastIP + ":51234",
			"last_seen_at":      time.Now().UnixMicro(),
		}
	}
	s.mu.Unlock()
	return out.rows([]json.RawMessage{mustRow(map[string]any{"Info": info})})
}

func (s *Server) setArtifact(user string, env map[string]string, out *responder) error {
	vals, ok := need(out, env, "VhDefinition")
	if !ok {
		return out.rows([]json.RawMessage{json.RawMessage(`{"Name":null}`)})
	}
	if !s.can(user, PermArtifactWriter) {
		out.log("artifact_set: PermissionDenied: Permission denied: [ARTIFACT_WRITER]")
		return out.rows([]json.RawMessage{json.RawMessage(`{"Name":null}`)})
	}
	var def struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
	}
	if err := yaml.Unmarshal([]byte(vals[0]), &def); err != nil || def.Name == "" {
		out.log("artifact_set: invalid artifact definition")
		return out.rows([]json.RawMessage{json.RawMessage(`{"Name":null}`)})
	}
	s.mu.Lock()
	s.artifacts[def.Name] = vals[0]
	s.mu.Unlock()
	return out.rows([]json.RawMessage{mustRow(map[string]string{"Name": def.Name})})
}

func (s *Server) getArtifacts(user string, env map[string]string, out *responder) error {
	vals, ok := need(out, env, "VhNames")
	if !ok {
		return out.rows(nil)
	}
	var names []string
	if err := json.Unmarshal([]byte(vals[0]), &names); err != nil {
		out.log("parse_json_array: %v", err)
		return out.rows(nil)
	}
	var rows []json.RawMessage
	s.mu.Lock()
	for _, n := range names {
		if y, ok := s.artifacts[n]; ok {
			rows = append(rows, mustRow(map[string]string{"name": n, "raw": y}))
		}
	}
	s.mu.Unlock()
	return out.rows(rows)
}

// watch streams completed hunt flows until the caller goes away.
func (s *Server) watch(ctx context.Context, user string, out *responder) error {
	if !s.can(user, PermReadResults) {
		out.log("watch_monitoring: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	ch := make(chan flowDone, 1024)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-ch:
			row := mustRow(map[string]any{"FlowId": f.flowID, "ClientId": f.clientID})
			if err := out.send([]json.RawMessage{row}); err != nil {
				return err
			}
		}
	}
}

func (s *Server) notify(done []flowDone) {
	if len(done) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watchers {
		for _, f := range done {
			select {
			case ch <- f:
			default: // a slow watcher misses wake-ups, never blocks the server
			}
		}
	}
}

// Hunts returns copies of every hunt, in creation order.
func (s *Server) Hunts() []Hunt {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Hunt, 0, len(s.order))
	for _, id := range s.order {
		h := *s.hunts[id]
		h.Rows = append([]json.RawMessage(nil), h.Rows...)
		out = append(out, h)
	}
	return out
}

// HuntByID returns a copy of one hunt.
func (s *Server) HuntByID(id string) (Hunt, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hunts[id]
	if !ok {
		return Hunt{}, false
	}
	c := *h
	c.Rows = append([]json.RawMessage(nil), h.Rows...)
	return c, true
}

// CreateHuntDirect creates a hunt as another Velociraptor user would (tests
// of crash recovery use it to plant a hunt that velohunt must find).
func (s *Server) CreateHuntDirect(org, artifact string, tags []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &Hunt{ID: newHuntID(), Org: orgOf(org), Artifact: artifact, Tags: tags, State: "PAUSED", Created: time.Now(),
		Expires: time.Now().Add(time.Hour), Params: map[string]string{}, Scheduled: map[string]bool{}, Finished: map[string]bool{},
		Flows: map[string]*Flow{}}
	s.hunts[h.ID] = h
	s.order = append(s.order, h.ID)
	return h.ID
}
