package velotest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// collectArtifact is velohunt's follow-up artifact
// (templates/artifacts/Custom.Velohunt.Collect.yaml).
const collectArtifact = "Custom.Velohunt.Collect"

// Collection is a client flow started by collect_client(), with what was
// asked (so tests can assert it) and what became of it.
type Collection struct {
	FlowID, ClientID, Org string
	Creator               string
	// Artifacts in the order asked; Spec holds each one's parameters.
	Artifacts []string
	Spec      map[string]map[string]string
	Timeout   int64 // seconds
	CPULimit  int64
	OpsPerSec int64
	MaxBytes  int64 // the flow's max_bytes (all its uploads)
	Urgent    bool
	// State is RUNNING (scheduled, not taken: 0.77.2 says so for a
	// client that is offline, with no start time) until the endpoint is
	// online, IN_PROGRESS on an endpoint that hangs, then FINISHED or
	// ERROR.
	State   string
	Status  string // the error, for ERROR
	Created time.Time
	Started time.Time // zero until the endpoint takes it
	// Rows are the results, by artifact name.
	Rows          map[string][]json.RawMessage
	UploadedFiles int64
	UploadedBytes int64
	// Uploads are the files the flow uploaded, as the server stores them.
	Uploads []Upload
}

// Upload is a file a collection uploaded: its path on the client, its
// path in the file store (as 0.77.2 lays it out:
// clients/C/collections/F/uploads/auto/<the client path's parts>) and its
// bytes (the file's Content, else Size zeros).
type Upload struct {
	ClientPath string
	Components []string
	Size       int64
	Content    []byte
}

func (u Upload) bytes() []byte {
	if u.Content != nil {
		return u.Content
	}
	return make([]byte, u.Size)
}

// Done reports whether the collection ended.
func (c *Collection) Done() bool { return c.State == "FINISHED" || c.State == "ERROR" }

func (c *Collection) copy() Collection {
	out := *c
	out.Artifacts = slices.Clone(c.Artifacts)
	out.Spec = map[string]map[string]string{}
	for k, v := range c.Spec {
		out.Spec[k] = map[string]string{}
		for pk, pv := range v {
			out.Spec[k][pk] = pv
		}
	}
	out.Uploads = slices.Clone(c.Uploads)
	out.Rows = map[string][]json.RawMessage{}
	for k, v := range c.Rows {
		out.Rows[k] = slices.Clone(v)
	}
	return out
}

// Collections returns copies of every collection, in the order they were
// asked for.
func (s *Server) Collections() []Collection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Collection, 0, len(s.collectOrder))
	for _, id := range s.collectOrder {
		out = append(out, s.collections[id].copy())
	}
	return out
}

// CollectionByID returns a copy of one collection.
func (s *Server) CollectionByID(flowID string) (Collection, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[flowID]
	if !ok {
		return Collection{}, false
	}
	return c.copy(), true
}

// SetCollectFailure makes every collect_client() call log line and return
// null (e.g. "collect_client: Unknown artifact X"); "" ends it.
func (s *Server) SetCollectFailure(logLine string) {
	s.mu.Lock()
	s.logOnCollect = logLine
	s.mu.Unlock()
}

// FailCollection ends a collection that has not ended in ERROR with
// status (a timeout on the client, say), keeping the rows it had.
func (s *Server) FailCollection(flowID, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[flowID]
	if !ok || c.Done() {
		return fmt.Errorf("velotest: no collection %s that has not ended", flowID)
	}
	c.State, c.Status = "ERROR", status
	return nil
}

// CompleteCollection runs a collection that has not ended on its endpoint
// as the endpoint is now, even one that hangs or is offline (a host that
// came back and reported).
func (s *Server) CompleteCollection(flowID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[flowID]
	if !ok || c.Done() {
		return fmt.Errorf("velotest: no collection %s that has not ended", flowID)
	}
	e := *s.endpoints[c.ClientID]
	e.Hang = false
	s.runCollection(c, &e)
	return nil
}

// clientIDPattern is what 0.77.2 accepts as a client id
// (services/client_info/validate.go).
var clientIDPattern = regexp.MustCompile(`^(C\.[a-z0-9]+|server)`)

// collectClient serves collect_client(): a new flow, RUNNING with no
// start time until the endpoint is online, run at once when it is.
func (s *Server) collectClient(user string, env map[string]string, org string, out *responder) error {
	null := func() error { return out.rows([]json.RawMessage{json.RawMessage(`{"FlowId":null}`)}) }
	vals, ok := need(out, env, "VhClientId", "VhArtifacts", "VhSpec", "VhTimeout", "VhCPULimit", "VhOpsPerSec", "VhMaxBytes", "VhUrgent")
	if !ok {
		return null()
	}
	if !s.can(user, PermCollectClient) {
		out.log("collect_client: PermissionDenied: User %s is not allowed to launch flows COLLECT_CLIENT.", user)
		return null()
	}
	s.mu.Lock()
	failure := s.logOnCollect
	s.mu.Unlock()
	if failure != "" {
		out.log("%s", failure)
		return null()
	}
	clientID := vals[0]
	if !clientIDPattern.MatchString(clientID) {
		out.log("collect_client: ClientId is not valid")
		return null()
	}
	var artifacts []string
	if err := json.Unmarshal([]byte(vals[1]), &artifacts); err != nil {
		out.log("parse_json_array: %v", err)
		return null()
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal([]byte(vals[2]), &raw); err != nil {
		out.log("parse_json: %v", err)
		return null()
	}
	ints := make([]int64, 4)
	for i, v := range vals[3:7] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			out.log("int: %q is not an integer", v)
			return null()
		}
		ints[i] = n
	}
	s.mu.Lock()
	ep, known := s.endpoints[clientID]
	s.mu.Unlock()
	if !known || ep.Org != org {
		out.log("collect_client: Client ID %s not known in this org: NotFoundError", clientID)
		return null()
	}
	for _, a := range artifacts {
		if !s.knownArtifact(a) {
			out.log("collect_client: Unknown artifact %s", a)
			return null()
		}
	}
	spec := map[string]map[string]string{}
	for name, p := range raw {
		if !slices.Contains(artifacts, name) && !s.knownArtifact(name) {
			out.log("collect_client: Parameter refers to an unknown artifact (%s).", name)
			return null()
		}
		spec[name] = map[string]string{}
		for k, v := range p {
			str, ok := v.(string)
			if !ok {
				b, _ := json.Marshal(v)
				str = string(b)
			}
			spec[name][k] = str
		}
	}
	s.mu.Lock()
	c := &Collection{FlowID: newFlowID(), ClientID: clientID, Org: org, Creator: user, Artifacts: artifacts, Spec: spec,
		Timeout: ints[0], CPULimit: ints[1], OpsPerSec: ints[2], MaxBytes: ints[3], Urgent: vals[7] != "",
		State: "RUNNING", Created: time.Now(), Rows: map[string][]json.RawMessage{}}
	s.collections[c.FlowID] = c
	s.collectOrder = append(s.collectOrder, c.FlowID)
	if ep := s.endpoints[clientID]; ep.Online {
		s.runCollection(c, ep)
	}
	s.mu.Unlock()
	return out.rows([]json.RawMessage{mustRow(map[string]any{"FlowId": c.FlowID})})
}

// runCollection runs a collection's artifacts on the endpoint; s.mu is
// held. An endpoint that hangs keeps it IN_PROGRESS with no rows; one with
// a FlowError ends it in ERROR with the first FlowErrorRows rows of each
// artifact; uploads beyond the flow's max_bytes end it in ERROR as the
// server does, before the artifact's row.
func (s *Server) runCollection(c *Collection, ep *Endpoint) {
	c.Started = time.Now()
	if ep.Hang {
		c.State = "IN_PROGRESS"
		return
	}
	c.State, c.Status, c.Rows, c.UploadedFiles, c.UploadedBytes, c.Uploads = "FINISHED", "", map[string][]json.RawMessage{}, 0, 0, nil
	for _, a := range c.Artifacts {
		var rows []map[string]any
		switch src, ok := s.sources[a]; {
		case a == collectArtifact:
			row, f := collectRow(ep, c.Spec[a])
			if f != nil {
				c.UploadedFiles++
				c.UploadedBytes += f.Size
				c.Uploads = append(c.Uploads, Upload{ClientPath: f.Path, Size: f.Size, Content: f.Content,
					Components: append([]string{"clients", c.ClientID, "collections", c.FlowID, "uploads", "auto"}, clientComponents(f.Path)...)})
			}
			if c.MaxBytes > 0 && c.UploadedBytes > c.MaxBytes {
				c.State, c.Status = "ERROR", "Collection exceeded upload limits"
				return
			}
			rows = append(rows, row)
		case ok:
			if i, found := src.index(ep.ClientID); found {
				for j := range src.RowsPerClient {
					r := src.Row(i, j)
					delete(r, "ClientId")
					rows = append(rows, r)
				}
			}
		default:
			if b, ok := s.behaviours[a]; ok && ep.OS != "" {
				rows = b(ep, c.Spec[a])
			}
		}
		if ep.FlowError != "" {
			rows = rows[:min(len(rows), ep.FlowErrorRows)]
		}
		for _, r := range rows {
			c.Rows[a] = append(c.Rows[a], mustRow(r))
		}
	}
	if ep.FlowError != "" {
		c.State, c.Status = "ERROR", ep.FlowError
	}
}

// collectRow is the row Custom.Velohunt.Collect writes on the endpoint for
// its parameters, and the file it uploaded (nil for none): a missing
// file, a link and a file over MaxBytes are refused with the artifact's
// words. Paths match as the client's file system does: case-insensitively
// on Windows.
func collectRow(ep *Endpoint, params map[string]string) (map[string]any, *File) {
	path := params["Path"]
	row := map[string]any{"Marker": params["Marker"], "Path": path, "Size": 0, "Uploaded": false, "SHA256": "", "MD5": "", "Error": ""}
	if path == "" {
		return row, nil
	}
	max, _ := strconv.ParseInt(params["MaxBytes"], 10, 64)
	i := slices.IndexFunc(ep.Files, func(f File) bool {
		return !f.Process && (f.Path == path || ep.OS == "windows" && strings.EqualFold(f.Path, path))
	})
	if i < 0 {
		row["Error"] = "no such file"
		return row, nil
	}
	f := ep.Files[i]
	row["Size"] = f.Size
	switch {
	case f.Link != "":
		row["Error"] = "a symbolic link (not followed)"
	case f.Size > max:
		row["Error"] = fmt.Sprintf("%d bytes, larger than MaxBytes (%d bytes)", f.Size, max)
	default:
		row["Uploaded"], row["SHA256"], row["MD5"] = true, f.SHA256, f.MD5
		return row, &f
	}
	return row, nil
}

// clientComponents splits a client path into the parts the file store
// keeps: "/srv/a" is srv, a; `C:\Users\a` is C:, Users, a.
func clientComponents(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' })
}

// runWaitingCollections runs the endpoint's collections that waited for
// it to come online, oldest first; s.mu is held.
func (s *Server) runWaitingCollections(ep *Endpoint) {
	for _, id := range s.collectOrder {
		if c := s.collections[id]; c.ClientID == ep.ClientID && c.State == "RUNNING" && c.Started.IsZero() {
			s.runCollection(c, ep)
		}
	}
}

// flowContext is one flow of a client as flows() reports it; s.mu is
// held. ok is false for an unknown flow.
func (s *Server) flowContext(clientID, flowID, org string) (ctx map[string]any, ok bool) {
	if c, found := s.collections[flowID]; found && c.ClientID == clientID && c.Org == org {
		var rows int
		var sources []string
		for _, a := range c.Artifacts {
			if n := len(c.Rows[a]); n > 0 {
				rows += n
				sources = append(sources, a)
			}
		}
		started := int64(0)
		if !c.Started.IsZero() {
			started = c.Started.UnixMicro()
		}
		return map[string]any{"session_id": c.FlowID, "client_id": c.ClientID, "state": c.State, "status": c.Status,
			"total_collected_rows": rows, "total_uploaded_files": c.UploadedFiles, "total_uploaded_bytes": c.UploadedBytes,
			"create_time": c.Created.UnixMicro(), "start_time": started, "active_time": started,
			"artifacts_with_results": nonNilList(sources), "request": c.request()}, true
	}
	for _, id := range s.order {
		h := s.hunts[id]
		if h.Org != org {
			continue
		}
		for _, f := range h.flows {
			if f.ClientID == clientID && f.FlowID == flowID {
				var sources []string
				if len(f.Rows) > 0 {
					sources = append(sources, h.Artifact)
				}
				return map[string]any{"session_id": f.FlowID, "client_id": f.ClientID, "state": f.State, "status": f.Status,
					"total_collected_rows": len(f.Rows), "total_uploaded_files": 0, "total_uploaded_bytes": 0,
					"create_time": f.Created.UnixMicro(), "start_time": f.Created.UnixMicro(), "active_time": f.Created.UnixMicro(),
					"artifacts_with_results": nonNilList(sources),
					"request":                map[string]any{"artifacts": []string{h.Artifact}, "specs": specsOf(map[string]map[string]string{h.Artifact: h.Params})}}, true
			}
		}
	}
	return nil, false
}

func nonNilList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// request is the collection's request as a flow context holds it:
// artifacts and specs, each spec's parameters as env key/value pairs.
func (c *Collection) request() map[string]any {
	return map[string]any{"client_id": c.ClientID, "flow_id": c.FlowID, "creator": c.Creator, "urgent": c.Urgent,
		"artifacts": c.Artifacts, "specs": specsOf(c.Spec), "timeout": c.Timeout, "cpu_limit": c.CPULimit,
		"ops_per_second": c.OpsPerSec, "max_upload_bytes": c.MaxBytes}
}

func specsOf(spec map[string]map[string]string) []map[string]any {
	names := make([]string, 0, len(spec))
	for n := range spec {
		names = append(names, n)
	}
	slices.Sort(names)
	out := []map[string]any{}
	for _, n := range names {
		keys := make([]string, 0, len(spec[n]))
		for k := range spec[n] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		env := []map[string]string{}
		for _, k := range keys {
			env = append(env, map[string]string{"key": k, "value": spec[n][k], "comment": ""})
		}
		out = append(out, map[string]any{"artifact": n, "parameters": map[string]any{"env": env}})
	}
	return out
}

// unknownClient logs what flows() logs for a client the org does not
// know, and reports whether it did; s.mu is not held.
func (s *Server) unknownClient(out *responder, clientID, org string) bool {
	s.mu.Lock()
	ep, ok := s.endpoints[clientID]
	s.mu.Unlock()
	if ok && ep.Org == org {
		return false
	}
	out.log("flows: unable to get client %s: Client ID %s not known in this org: NotFoundError", clientID, clientID)
	return true
}

// clientQuery reads VhClientId and the named variables of a query on one
// client's flows, as the server answers it: not ok (the caller answers
// its empty result) when a variable is missing, the user may not read
// results, or the org does not know the client (each logged).
func (s *Server) clientQuery(user string, env map[string]string, org string, out *responder, names ...string) ([]string, bool) {
	vals, ok := need(out, env, append([]string{"VhClientId"}, names...)...)
	if !ok {
		return nil, false
	}
	if !s.can(user, PermReadResults) {
		out.log("flows: PermissionDenied: Permission denied: [READ_RESULTS]")
		return nil, false
	}
	if s.unknownClient(out, vals[0], org) {
		return nil, false
	}
	return vals, true
}

// flowStatus serves flows(client_id=, flow_id=, summary=TRUE): the flow's
// context, or no row.
func (s *Server) flowStatus(user string, env map[string]string, org string, out *responder) error {
	vals, ok := s.clientQuery(user, env, org, out, "VhFlowId")
	if !ok {
		return out.rows(nil)
	}
	s.mu.Lock()
	ctx, found := s.flowContext(vals[0], vals[1], org)
	s.mu.Unlock()
	if !found {
		return out.rows(nil)
	}
	delete(ctx, "request")
	return out.rows([]json.RawMessage{mustRow(ctx)})
}

// clientCollections serves flows(client_id=) WHERE VhArtifact in
// request.artifacts: the client's collections of the artifact, with
// their specs.
func (s *Server) clientCollections(user string, env map[string]string, org string, out *responder) error {
	vals, ok := s.clientQuery(user, env, org, out, "VhArtifact")
	if !ok {
		return out.rows(nil)
	}
	s.mu.Lock()
	var rows []json.RawMessage
	// Newest first, as the server lists a client's flows.
	for i := len(s.collectOrder) - 1; i >= 0; i-- {
		c := s.collections[s.collectOrder[i]]
		if c.ClientID == vals[0] && c.Org == org && slices.Contains(c.Artifacts, vals[1]) {
			rows = append(rows, mustRow(map[string]any{"session_id": c.FlowID, "create_time": c.Created.UnixMicro(), "specs": specsOf(c.Spec)}))
		}
	}
	s.mu.Unlock()
	return out.rows(rows)
}

// cancelFlow serves velohunt's cancel query: the flow's state (null when
// unknown), and cancel_flow() for a flow that has not ended, which marks
// it ERROR "Cancelled by VQL query" as 0.77.2 does.
func (s *Server) cancelFlow(user string, env map[string]string, org string, out *responder) error {
	vals, ok := s.clientQuery(user, env, org, out, "VhFlowId")
	if !ok {
		return out.rows([]json.RawMessage{json.RawMessage(`{"State":null,"Cancelled":null}`)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, found := s.flowContext(vals[0], vals[1], org)
	if !found {
		return out.rows([]json.RawMessage{json.RawMessage(`{"State":null,"Cancelled":null}`)})
	}
	state := ctx["state"].(string)
	if state == "FINISHED" || state == "ERROR" {
		return out.rows([]json.RawMessage{mustRow(map[string]any{"State": state, "Cancelled": nil})})
	}
	if !s.users[user][PermCollectClient] {
		out.log("cancel_flow: PermissionDenied: Permission denied: [COLLECT_CLIENT]")
		return out.rows([]json.RawMessage{mustRow(map[string]any{"State": state, "Cancelled": nil})})
	}
	cancelled := "Cancelled by VQL query"
	if c, ok := s.collections[vals[1]]; ok {
		c.State, c.Status = "ERROR", cancelled
	} else {
		for _, id := range s.order {
			for _, f := range s.hunts[id].flows {
				if f.ClientID == vals[0] && f.FlowID == vals[1] {
					f.State, f.Status = "ERROR", cancelled
				}
			}
		}
	}
	return out.rows([]json.RawMessage{mustRow(map[string]any{"State": state, "Cancelled": vals[1]})})
}

// collectionResults serves source(client_id=, flow_id=, artifact=,
// source=, start_row=) for a collection: the artifact's rows from
// start_row, with the artifact's columns only. It reports false when the
// flow is not a collection of the client.
func (s *Server) collectionResults(vals []string, org string, start int, out *responder) (bool, error) {
	name := vals[2]
	if vals[3] != "" {
		name += "/" + vals[3]
	}
	s.mu.Lock()
	c, ok := s.collections[vals[1]]
	if !ok || c.ClientID != vals[0] || c.Org != org {
		s.mu.Unlock()
		return false, nil
	}
	rows := c.Rows[name]
	rows = slices.Clone(rows[min(max(start, 0), len(rows)):])
	s.mu.Unlock()
	return true, out.rows(rows)
}
