package velociraptor

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// CollectArtifact is the name of velohunt's own follow-up artifact
// (templates/artifacts/Custom.Velohunt.Collect.yaml): it uploads one file
// and reports it in one row.
const CollectArtifact = "Custom.Velohunt.Collect"

// DefaultCollectMaxBytes caps the collected file when a CollectRequest
// sets no MaxBytes (100 MiB, the artifact's own default).
const DefaultCollectMaxBytes = 100 << 20

// ArtifactSpec names an artifact to collect and its parameters.
type ArtifactSpec struct {
	Name string
	// Params are the artifact's parameters; values are strings, as
	// Velociraptor stores them. Unknown names are ignored by the server.
	Params map[string]string
}

// CollectRequest describes a follow-up collection on one client.
type CollectRequest struct {
	Org, ClientID string
	// Marker is velohunt's marker for the collection (e.g.
	// "vh-0123456789abcdef"), the Marker parameter of
	// Custom.Velohunt.Collect: after a crash between asking and recording,
	// FindCollection finds the flow by it. Required.
	Marker string
	// Path is the absolute path of the file to upload, as a hunt reported
	// it (its OSPath). "" uploads nothing; the artifact still reports its
	// row.
	Path string
	// MaxBytes caps the file: a larger one is not uploaded and its row
	// says why. 0 means DefaultCollectMaxBytes.
	MaxBytes int64
	// MaxUploadBytes caps everything the flow uploads (the server fails
	// the flow beyond it); 0 means MaxBytes. Set it higher when Artifacts
	// upload files too.
	MaxUploadBytes int64
	// Artifacts are more artifacts to collect in the same flow, after
	// Custom.Velohunt.Collect.
	Artifacts []ArtifactSpec
	// Timeout is the flow's timeout on the client; 0 leaves the server's
	// default (the artifacts', else 10 minutes).
	Timeout time.Duration
	// CPULimit (percent) and OpsPerSecond throttle the flow; 0: none.
	CPULimit     int
	OpsPerSecond int
	// Urgent makes the client run the flow before others it has queued.
	Urgent bool
}

// CollectClient schedules one flow on the client that collects
// Custom.Velohunt.Collect first and then the named artifacts, and returns
// its flow id. A client that is offline gets the flow when it next
// connects (until then the flow is RUNNING with no Started time). A null collect_client() is an
// error carrying the server's log line: ENOTFOUND for a client the org
// does not know, EINVALID for a malformed client id or an unknown
// artifact; a missing permission (COLLECT_CLIENT) is EPERMISSION.
func (c *Client) CollectClient(ctx context.Context, r CollectRequest) (string, error) {
	if r.ClientID == "" || r.Marker == "" {
		return "", ioc.Errorf(ioc.EINVALID, "collect client: a client id and a marker are required")
	}
	maxBytes := r.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultCollectMaxBytes
	}
	uploadBytes := r.MaxUploadBytes
	if uploadBytes <= 0 {
		uploadBytes = maxBytes
	}
	names := []string{CollectArtifact}
	spec := map[string]map[string]string{CollectArtifact: {
		"Marker": r.Marker, "Path": r.Path, "MaxBytes": strconv.FormatInt(maxBytes, 10)}}
	for _, a := range r.Artifacts {
		// A second spec of one name would replace the first in the
		// server's spec dict.
		if _, dup := spec[a.Name]; dup || a.Name == "" {
			return "", ioc.Errorf(ioc.EINVALID, "collect client: artifact %q empty or named twice", a.Name)
		}
		names = append(names, a.Name)
		spec[a.Name] = map[string]string{}
		for k, v := range a.Params {
			spec[a.Name][k] = v
		}
	}
	artifacts, err := json.Marshal(names)
	if err != nil {
		return "", fmt.Errorf("collect client: %w", err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("collect client: %w", err)
	}
	urgent := ""
	if r.Urgent {
		urgent = "Y"
	}
	env := map[string]string{
		"VhClientId":  r.ClientID,
		"VhArtifacts": string(artifacts),
		"VhSpec":      string(specJSON),
		"VhTimeout":   strconv.FormatInt(int64(r.Timeout/time.Second), 10),
		"VhCPULimit":  strconv.Itoa(r.CPULimit),
		"VhOpsPerSec": strconv.Itoa(r.OpsPerSecond),
		"VhMaxBytes":  strconv.FormatInt(uploadBytes, 10),
		"VhUrgent":    urgent,
	}
	var logs []string
	rows, err := c.rows(ctx, call{name: "collect-client", text: vqlCollectClient, env: env, org: r.Org, logs: &logs})
	if err != nil {
		return "", err
	}
	var v struct{ FlowId *string }
	if len(rows) > 0 && json.Unmarshal(rows[0], &v) == nil && v.FlowId != nil && *v.FlowId != "" {
		return *v.FlowId, nil
	}
	return "", collectRefused(r.ClientID, logs)
}

// collectRefused explains a null collect_client() from the lines the
// function logged.
func collectRefused(clientID string, logs []string) error {
	var why []string
	for _, l := range logs {
		if strings.HasPrefix(l, "collect_client:") {
			why = append(why, l)
		}
	}
	msg := strings.Join(why, "; ")
	code := ioc.EINTERNAL
	switch {
	case msg == "":
		msg = "collect_client() returned no flow and the server logged no reason"
	case strings.Contains(msg, "not known in this org"):
		code = ioc.ENOTFOUND
	case strings.Contains(msg, "ClientId is not valid"), strings.Contains(msg, "ClientId not provided"):
		code = ioc.EINVALID
	}
	return fmt.Errorf("velociraptor collect-client on %s: %w", clientID, &ioc.Error{Code: code, Message: msg})
}

// FindCollection finds the client's flow whose Custom.Velohunt.Collect
// Marker parameter is marker (the newest, should there be several).
// Returns ENOTFOUND when there is none, also for a client the server does
// not know. It reads every flow of the client: for recovery, not polling.
func (c *Client) FindCollection(ctx context.Context, org, clientID, marker string) (string, error) {
	found, newest := "", int64(-1)
	err := c.run(ctx, call{name: "find-collection", text: vqlClientCollections,
		env: map[string]string{"VhClientId": clientID, "VhArtifact": CollectArtifact}, org: org}, func(raw json.RawMessage) error {
		var v struct {
			FlowID  string  `json:"session_id"`
			Created jsonInt `json:"create_time"`
			Specs   []struct {
				Artifact   string `json:"artifact"`
				Parameters struct {
					Env []struct {
						Key   string `json:"key"`
						Value string `json:"value"`
					} `json:"env"`
				} `json:"parameters"`
			} `json:"specs"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("velociraptor find-collection: bad row: %w", err)
		}
		for _, s := range v.Specs {
			if s.Artifact != CollectArtifact {
				continue
			}
			for _, p := range s.Parameters.Env {
				if p.Key == "Marker" && p.Value == marker && int64(v.Created) > newest {
					found, newest = v.FlowID, int64(v.Created)
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", ioc.Errorf(ioc.ENOTFOUND, "no collection on client %s with marker %s", clientID, marker)
	}
	return found, nil
}

// FlowStatus is the state of one flow, from its flow context.
type FlowStatus struct {
	FlowID string
	// State, as 0.77.2 derives it: RUNNING (scheduled, not yet sent to
	// the client: an offline client's flow, with no Started time),
	// WAITING (sent, the client has reported nothing yet), IN_PROGRESS,
	// UNRESPONSIVE (no word from the client for 5 minutes), FINISHED or
	// ERROR (a cancelled flow too).
	State         string
	Status        string // the error, when State is ERROR
	Rows          int64  // total_collected_rows, over every artifact
	UploadedFiles int64
	UploadedBytes int64
	// Created, Started (the client took it) and Active (the client last
	// sent something); zero when the server has no such time yet.
	Created, Started, Active time.Time
	// ArtifactsWithResults are the sources that returned rows
	// ("Name" or "Name/Source").
	ArtifactsWithResults []string
}

// Done reports whether the flow ended (finished or failed).
func (f FlowStatus) Done() bool { return f.State == "FINISHED" || f.State == "ERROR" }

// FlowStatus reads the state of one of the client's flows (a hunt's flow
// too). Returns ENOTFOUND for an unknown flow or client.
func (c *Client) FlowStatus(ctx context.Context, org, clientID, flowID string) (FlowStatus, error) {
	rows, err := c.rows(ctx, call{name: "flow-status", text: vqlFlowStatus,
		env: map[string]string{"VhClientId": clientID, "VhFlowId": flowID}, org: org})
	if err != nil {
		return FlowStatus{}, err
	}
	if len(rows) == 0 {
		return FlowStatus{}, ioc.Errorf(ioc.ENOTFOUND, "flow %s of client %s not found", flowID, clientID)
	}
	var v struct {
		FlowID        string          `json:"session_id"`
		State         json.RawMessage `json:"state"`
		Status        string          `json:"status"`
		Rows          jsonInt         `json:"total_collected_rows"`
		UploadedFiles jsonInt         `json:"total_uploaded_files"`
		UploadedBytes jsonInt         `json:"total_uploaded_bytes"`
		Created       jsonInt         `json:"create_time"` // µs
		Started       jsonInt         `json:"start_time"`
		Active        jsonInt         `json:"active_time"`
		Sources       []string        `json:"artifacts_with_results"`
	}
	if err := json.Unmarshal(rows[0], &v); err != nil {
		return FlowStatus{}, fmt.Errorf("velociraptor flow-status %s: %w", flowID, err)
	}
	return FlowStatus{FlowID: v.FlowID, State: flowState(v.State), Status: v.Status, Rows: int64(v.Rows),
		UploadedFiles: int64(v.UploadedFiles), UploadedBytes: int64(v.UploadedBytes),
		Created: microTime(v.Created), Started: microTime(v.Started), Active: microTime(v.Active),
		ArtifactsWithResults: v.Sources}, nil
}

func microTime(us jsonInt) time.Time {
	if us <= 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(us)).UTC()
}

// CancelFlow cancels a flow that has not ended: the server marks it ERROR
// ("Cancelled by VQL query") and tells the client to stop. A flow that
// already ended is left as it is (nil): 0.77.2 would turn a FINISHED flow
// into ERROR. Returns ENOTFOUND for an unknown flow or client.
func (c *Client) CancelFlow(ctx context.Context, org, clientID, flowID string) error {
	rows, err := c.rows(ctx, call{name: "cancel-flow", text: vqlCancelFlow,
		env: map[string]string{"VhClientId": clientID, "VhFlowId": flowID}, org: org})
	if err != nil {
		return err
	}
	var v struct{ State, Cancelled *string }
	if len(rows) == 0 || json.Unmarshal(rows[0], &v) != nil || v.State == nil {
		return ioc.Errorf(ioc.ENOTFOUND, "flow %s of client %s not found", flowID, clientID)
	}
	if *v.State == "FINISHED" || *v.State == "ERROR" {
		return nil
	}
	if v.Cancelled == nil {
		return fmt.Errorf("velociraptor cancel-flow %s: %w", flowID, ioc.Errorf(ioc.EINTERNAL, "cancel_flow() returned nothing"))
	}
	return nil
}

// CollectedFile is the row Custom.Velohunt.Collect wrote.
type CollectedFile struct {
	Marker string
	// Path is the path the artifact read, as the client parsed the one it
	// was given (a Windows client writes the drive letter upper-case and
	// keeps the rest as given), or the one given when nothing was there.
	Path string
	// Size is the bytes uploaded; for a refused file, its size.
	Size int64
	// Uploaded is true only when the file was uploaded and was still the
	// same file after the upload; SHA256 and MD5 are then the hashes of
	// what the server stored, and empty otherwise. With Uploaded false,
	// Error says why (empty when no path was asked for).
	Uploaded    bool
	SHA256, MD5 string
	Error       string
}

var (
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
	md5Hex    = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// CollectedFile reads the row Custom.Velohunt.Collect wrote in a flow.
// Returns ENOTFOUND when the flow has no such row (yet: the row comes at
// the end of the artifact's run).
func (c *Client) CollectedFile(ctx context.Context, org, clientID, flowID string) (CollectedFile, error) {
	var got *CollectedFile
	err := c.FlowResults(ctx, org, clientID, flowID, CollectArtifact, 0, func(raw json.RawMessage) error {
		if got != nil {
			return nil // the artifact writes one row
		}
		var v struct {
			Marker, Path, SHA256, MD5, Error string
			Size                             jsonInt
			Uploaded                         bool
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("velociraptor collected-file %s: bad row: %w", flowID, err)
		}
		got = &CollectedFile{Marker: v.Marker, Path: v.Path, Size: int64(v.Size), Uploaded: v.Uploaded,
			SHA256: v.SHA256, MD5: v.MD5, Error: v.Error}
		return nil
	})
	if err != nil {
		return CollectedFile{}, err
	}
	if got == nil {
		return CollectedFile{}, ioc.Errorf(ioc.ENOTFOUND, "flow %s of client %s has no %s row", flowID, clientID, CollectArtifact)
	}
	// An artifact of this name that is not velohunt's could say anything:
	// an upload is believed only with well-formed hashes.
	if got.Uploaded && (!sha256Hex.MatchString(got.SHA256) || !md5Hex.MatchString(got.MD5)) {
		return CollectedFile{}, fmt.Errorf("velociraptor collected-file %s: %w", flowID,
			ioc.Errorf(ioc.EINTERNAL, "an uploaded row without a SHA256 and MD5: not velohunt's artifact?"))
	}
	return *got, nil
}
