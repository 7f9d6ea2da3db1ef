package writeback

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// eventMarkers returns the case's events by velohunt marker tag, listed
// once per batch.
func (w *Writer) eventMarkers(ctx context.Context, c *batchCache, cid int64) (map[string]int64, error) {
	defer w.locks.lock(fmt.Sprintf("events:%d", cid))()
	c.mu.Lock()
	tags, ok := c.events[cid]
	c.mu.Unlock()
	if ok {
		return tags, nil
	}
	list, err := w.api().ListEvents(ctx, cid)
	if err != nil {
		return nil, err
	}
	tags = map[string]int64{}
	for _, e := range list {
		for _, t := range strings.Split(e.Tags, ",") {
			if t = strings.TrimSpace(t); strings.HasPrefix(t, "vh-") {
				tags[t] = e.ID
			}
		}
	}
	c.mu.Lock()
	c.events[cid] = tags
	c.mu.Unlock()
	return tags, nil
}

// eventLinks prepares a timeline event of a hit on a host: the host's
// asset to link (none once the asset write has had 15 minutes; errDefer
// before, as the asset write comes first), and the event an earlier
// attempt of the write made before its answer was lost (found by marker;
// 0 when none).
func (w *Writer) eventLinks(ctx context.Context, c *batchCache, wr store.Write, server, clientID string, firstSeen time.Time) (assets []int64, found int64, err error) {
	assetID, err := w.Store.AssetID(ctx, wr.CaseID, server, clientID)
	switch {
	case err == nil:
		assets = []int64{assetID}
	case ioc.ErrorCode(err) != ioc.ENOTFOUND:
		return nil, 0, err
	case w.Now().Sub(firstSeen) < 15*time.Minute:
		return nil, 0, errDefer
	}
	if wr.Attempts > 0 {
		tags, err := w.eventMarkers(ctx, c, wr.CaseID)
		if err != nil {
			return nil, 0, err
		}
		if id, ok := tags[wr.Marker]; ok {
			return assets, id, nil
		}
	}
	return assets, 0, nil
}

// event creates the hit's timeline event, linked to the asset and the IOC.
func (w *Writer) event(ctx context.Context, c *batchCache, wr store.Write) (int64, error) {
	d, err := w.Store.FindHitDetail(ctx, wr.HitID)
	if err != nil {
		return 0, err
	}
	assets, found, err := w.eventLinks(ctx, c, wr, d.Hunt.Server, d.Client.ClientID, d.FirstSeen)
	if err != nil || found != 0 {
		return found, err
	}
	when, isEvidence := d.EventTime, true
	if when.IsZero() {
		when, isEvidence = d.Hunt.StartedAt, false
		if when.IsZero() {
			when = d.FirstSeen
		}
	}
	view := render.Event{IOCType: d.IOC.TypeName, IOCValue: d.IOC.Value, ClientID: d.Client.ClientID,
		Hostname: d.Client.Hostname, FQDN: d.Client.FQDN, OS: d.Client.OS, LastIP: d.Client.LastIP, Source: d.Source,
		Evidence: d.Evidence, When: when, WhenIsEvidence: isEvidence, HuntID: d.Hunt.VRHuntID, Server: d.Hunt.Server,
		Org: d.Hunt.Org}
	if w.GUIURL != nil {
		view.HuntURL = w.GUIURL(d.Hunt.Server, d.Hunt.Org, d.Hunt.VRHuntID)
	}
	title, err := w.Render.EventTitle(view)
	if err != nil {
		return 0, err
	}
	content, err := w.Render.EventContent(view)
	if err != nil {
		return 0, err
	}
	return w.api().AddEvent(ctx, wr.CaseID, iris.NewEvent{Title: title, Date: render.IRISDate(when), TZ: "+00:00",
		CategoryID: w.Refs.EventCategoryID, Content: content, Raw: render.Raw(d.Row),
		Source: render.Token(fmt.Sprintf("Velociraptor %s hunt %s client %s", d.Hunt.Server, d.Hunt.VRHuntID, d.Client.ClientID)),
		Tags:   "velohunt," + wr.Marker, Assets: assets, IOCs: []int64{d.IOC.IRISID}, Color: w.EventColor})
}
