package writeback

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// collection is what the records of a hit's follow-up collection need.
type collection struct {
	hit  store.HitDetail
	col  store.Collection
	view render.Collection
}

func (w *Writer) collection(ctx context.Context, wr store.Write) (collection, error) {
	var c collection
	var err error
	if c.hit, err = w.Store.FindHitDetail(ctx, wr.HitID); err != nil {
		return c, err
	}
	if c.col, err = w.Store.HitCollection(ctx, wr.HitID); err != nil {
		return c, err
	}
	var arts []struct{ Name string }
	json.Unmarshal([]byte(c.col.Artifacts), &arts) // written by velohunt; none when unreadable
	d, col := c.hit, c.col
	c.view = render.Collection{IOCType: d.IOC.TypeName, IOCValue: d.IOC.Value, IRISIOC: d.IOC.IRISID, ClientID: col.ClientID,
		Hostname: d.Client.Hostname, Collected: col.State == store.CollectDone, Reason: col.Reason, Path: col.Path,
		Size: col.FileSize, SHA256: col.SHA256, MD5: col.MD5, FlowID: col.FlowID, HuntID: d.Hunt.VRHuntID,
		Server: col.Server, Org: col.Org, Marker: wr.Marker}
	if col.Path == "" {
		c.view.Size = col.Uploaded
	}
	for _, a := range arts {
		c.view.Artifacts = append(c.view.Artifacts, a.Name)
	}
	if w.FlowURL != nil && col.FlowID != "" {
		c.view.FlowURL = w.FlowURL(col.Server, col.Org, col.ClientID, col.FlowID)
	}
	return c, nil
}

// evidence records a collection in its case as an IRIS evidence: the
// file's name, size and SHA-256 as the client computed it at upload, a
// description naming host, client, flow and link, and a chain of custody.
// A retry after an attempt whose answer was lost finds the record by the
// marker in its description. With DatastoreMaxBytes set, a copy of the
// file goes to the case's datastore first, and the description says so.
func (w *Writer) evidence(ctx context.Context, wr store.Write) (int64, error) {
	c, err := w.collection(ctx, wr)
	if err != nil {
		return 0, err
	}
	if c.col.State != store.CollectDone {
		return 0, ioc.Errorf(ioc.ENOTFOUND, "collection %d was not collected", c.col.ID)
	}
	if wr.Attempts > 0 {
		list, err := w.api().ListEvidences(ctx, wr.CaseID)
		if err != nil {
			return 0, err
		}
		for _, e := range list {
			if strings.Contains(e.Description, wr.Marker) {
				return e.ID, nil
			}
		}
	}
	if c.view.Datastore, err = w.datastoreCopy(ctx, c, wr); err != nil {
		return 0, err
	}
	desc, err := w.Render.EvidenceDescription(c.view)
	if err != nil {
		return 0, err
	}
	at := c.col.Ended
	if at.IsZero() {
		at = w.Now()
	}
	detail := fmt.Sprintf("collected by velohunt with Velociraptor (server %s, flow %s, client %s) for the hunt %s of IRIS IOC #%d; "+
		"SHA-256 computed by the client at upload; velohunt marker %s", render.Token(c.col.Server), render.Token(c.col.FlowID),
		render.Token(c.col.ClientID), render.Token(c.hit.Hunt.VRHuntID), c.hit.IOC.IRISID, wr.Marker)
	e, err := w.api().AddEvidence(ctx, wr.CaseID, iris.NewEvidence{Filename: render.EvidenceFilename(c.view), Size: c.view.Size,
		Hash: c.col.SHA256, Description: desc, TypeID: w.Refs.EvidenceTypeID, Acquired: at,
		ChainOfCustody: []iris.CustodyEntry{{Action: "collected", By: "velohunt", At: at.UTC().Truncate(time.Second), Detail: detail}}})
	return e.ID, err
}

// collected writes the timeline event of a hit's collection (collected or
// failed), linked to the host's asset and the IOC.
func (w *Writer) collected(ctx context.Context, c *batchCache, wr store.Write) (int64, error) {
	col, err := w.collection(ctx, wr)
	if err != nil {
		return 0, err
	}
	assets, found, err := w.eventLinks(ctx, c, wr, col.col.Server, col.col.ClientID, col.hit.FirstSeen)
	if err != nil || found != 0 {
		return found, err
	}
	title, err := w.Render.CollectedTitle(col.view)
	if err != nil {
		return 0, err
	}
	content, err := w.Render.CollectedContent(col.view)
	if err != nil {
		return 0, err
	}
	raw, _ := json.Marshal(map[string]any{"flow_id": col.col.FlowID, "client_id": col.col.ClientID, "server": col.col.Server,
		"org": col.col.Org, "state": col.col.State, "reason": col.col.Reason, "path": col.col.Path, "size": col.col.FileSize,
		"sha256": col.col.SHA256, "md5": col.col.MD5, "uploaded_bytes": col.col.Uploaded})
	when := col.col.Ended
	if when.IsZero() {
		when = w.Now()
	}
	return w.api().AddEvent(ctx, wr.CaseID, iris.NewEvent{Title: title, Date: render.IRISDate(when), TZ: "+00:00",
		CategoryID: w.Refs.EventCategoryID, Content: content, Raw: render.Raw(raw),
		Source: render.Token(fmt.Sprintf("Velociraptor %s flow %s client %s", col.col.Server, col.col.FlowID, col.col.ClientID)),
		Tags:   "velohunt,collected," + wr.Marker, Assets: assets, IOCs: []int64{col.hit.IOC.IRISID}, Color: w.EventColor})
}
