package iris

import (
	"context"
	"encoding/json"
	"time"
)

// NewEvidence is an evidence record to add to a case: a file collected
// from an endpoint, kept where it was collected (IRIS keeps the record,
// not the bytes).
//
// IRIS 2.4.20 shows Filename as text, and renders Description as Markdown
// into HTML in the evidence dialog's preview (an <img> in it becomes an
// image element, seen on the real IRIS): text from an endpoint goes into
// Description only neutralised, as for timeline events.
type NewEvidence struct {
	Filename    string
	Size        int64
	Hash        string // SHA-256, hex
	Description string
	TypeID      int64
	Acquired    time.Time
	// ChainOfCustody is stored as given (JSON).
	ChainOfCustody []CustodyEntry
}

// CustodyEntry is one step of an evidence's chain of custody.
type CustodyEntry struct {
	Action string    `json:"action"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

// Evidence is an evidence record as IRIS returns it.
type Evidence struct {
	ID             int64
	Filename       string
	Size           int64
	Hash           string
	Description    string
	TypeID         int64
	UserID         int64
	ChainOfCustody []CustodyEntry
}

type evidenceRow struct {
	ID             flexInt         `json:"id"`
	Filename       string          `json:"filename"`
	Size           flexInt         `json:"file_size"`
	Hash           string          `json:"file_hash"`
	Description    string          `json:"file_description"`
	TypeID         flexInt         `json:"type_id"`
	UserID         flexInt         `json:"user_id"`
	ChainOfCustody json.RawMessage `json:"chain_of_custody"`
}

func (r evidenceRow) evidence() Evidence {
	e := Evidence{ID: int64(r.ID), Filename: r.Filename, Size: int64(r.Size), Hash: r.Hash, Description: r.Description,
		TypeID: int64(r.TypeID), UserID: int64(r.UserID)}
	json.Unmarshal(r.ChainOfCustody, &e.ChainOfCustody) // absent or not ours: none
	return e
}

// AddEvidence records an evidence in a case (the service user may: it has
// full access to the case).
func (c *Client) AddEvidence(ctx context.Context, cid int64, n NewEvidence) (Evidence, error) {
	chain := n.ChainOfCustody
	if chain == nil {
		chain = []CustodyEntry{}
	}
	body := map[string]any{"filename": n.Filename, "file_size": n.Size, "file_hash": n.Hash, "file_description": n.Description,
		"type_id": n.TypeID, "acquisition_date": n.Acquired.UTC().Format("2006-01-02T15:04:05"),
		"chain_of_custody": chain, "custom_attributes": map[string]any{}}
	var r evidenceRow
	if err := c.do(ctx, "POST", "/case/evidences/add", cid, body, &r); err != nil {
		return Evidence{}, err
	}
	return r.evidence(), nil
}

// ListEvidences returns a case's evidence records.
func (c *Client) ListEvidences(ctx context.Context, cid int64) ([]Evidence, error) {
	var r struct {
		Evidences []evidenceRow `json:"evidences"`
	}
	if err := c.do(ctx, "GET", "/case/evidences/list", cid, nil, &r); err != nil {
		return nil, err
	}
	out := make([]Evidence, len(r.Evidences))
	for i, x := range r.Evidences {
		out[i] = x.evidence()
	}
	return out, nil
}

// EvidenceTypes lists IRIS's evidence types.
func (c *Client) EvidenceTypes(ctx context.Context) ([]RefItem, error) {
	var rows []struct {
		ID   flexInt `json:"id"`
		Name string  `json:"name"`
	}
	if err := c.do(ctx, "GET", "/manage/evidence-types/list", -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]RefItem, len(rows))
	for i, r := range rows {
		out[i] = RefItem{ID: int64(r.ID), Name: r.Name}
	}
	return out, nil
}
