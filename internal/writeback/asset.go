package writeback

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
)

// sendAssets makes sure a host is an asset of its case linked to every IOC
// of the writes (all for the same case, server and client), with one
// request when the asset is new and one read and one update when it
// exists, and records the outcome on each write. It returns how many are
// done.
func (w *Writer) sendAssets(ctx context.Context, c *batchCache, group []store.Write) (int, error) {
	if until := w.heldUntil(fmt.Sprintf("case:%d", group[0].CaseID)); w.Now().Before(until) {
		for _, wr := range group {
			if err := w.Store.WriteDefer(ctx, wr.ID, until); err != nil {
				return 0, err
			}
		}
		return 0, nil
	}
	done := 0
	var live []store.Write
	var details []store.HitDetail
	for _, wr := range group {
		d, err := w.Store.FindHitDetail(ctx, wr.HitID)
		if missing(err) {
			if _, err := w.drop(ctx, wr, err); err != nil {
				return done, err
			}
			done++
			continue
		} else if err != nil {
			return done, err
		}
		live, details = append(live, wr), append(details, d)
	}
	for _, wr := range live {
		if err := w.Store.BeginWrite(ctx, wr.ID); err != nil {
			return done, err
		}
	}
	if len(live) == 0 {
		return done, nil
	}
	id, err := w.asset(ctx, c, live, details)
	for _, wr := range live {
		ok, err := w.finish(ctx, wr, id, err)
		if err != nil {
			return done, err
		}
		if ok {
			done++
		}
	}
	return done, nil
}

// assetTypeFor picks the IRIS asset type of an endpoint.
func (w *Writer) assetTypeFor(c store.Client) int64 {
	key := strings.ToLower(c.OS)
	if key == "windows" && strings.Contains(strings.ToLower(c.Release), "server") {
		if id, ok := w.Refs.AssetTypes["windows_server"]; ok {
			return id
		}
	}
	if id, ok := w.Refs.AssetTypes[key]; ok {
		return id
	}
	return w.Refs.AssetTypes["default"]
}

func assetName(c store.Client) string {
	name := c.Hostname
	if name == "" {
		name = c.ClientID
	}
	return render.Clip(render.Shown(render.Line(name)), 150)
}

// asset makes sure the writes' host is an asset of the case linked to
// their IOCs: reuse the recorded asset, else one with the same name and type
// (IRIS refuses duplicates), else create it with all the links.
func (w *Writer) asset(ctx context.Context, c *batchCache, group []store.Write, details []store.HitDetail) (int64, error) {
	d, cid := details[0], group[0].CaseID
	var iocIDs []int64
	attempted := false
	for i, x := range details {
		if !slices.Contains(iocIDs, x.IOC.IRISID) {
			iocIDs = append(iocIDs, x.IOC.IRISID)
		}
		attempted = attempted || group[i].Attempts > 0
	}
	id, err := w.Store.AssetID(ctx, cid, d.Hunt.Server, d.Client.ClientID)
	if err == nil {
		return id, w.link(ctx, cid, id, iocIDs)
	} else if ioc.ErrorCode(err) != ioc.ENOTFOUND {
		return 0, err
	}
	if d.Client.ClientID == "" {
		d.Client.ClientID = "unknown"
	}
	name, typeID := assetName(d.Client), w.assetTypeFor(d.Client)
	// Two hosts of one case may share a name: one creates, the other links.
	defer w.locks.lock(fmt.Sprintf("name:%d:%d:%s", cid, typeID, strings.ToLower(name)))()
	if attempted {
		// An earlier attempt may have created it before its answer was lost.
		if id, found, err := w.findAsset(ctx, c, cid, name, typeID, false); err != nil {
			return 0, err
		} else if found {
			return id, w.recordAndLink(ctx, d, cid, id, iocIDs)
		}
	}
	more := ""
	if len(iocIDs) > 1 {
		more = fmt.Sprintf(" (and %d more IOC(s))", len(iocIDs)-1)
	}
	id, err = w.api().AddAsset(ctx, cid, iris.NewAsset{Name: name, TypeID: typeID, AnalysisStatusID: w.Refs.AnalysisStatusID,
		CompromiseStatusID: w.Refs.CompromiseStatusID, IP: render.Shown(render.Line(d.Client.LastIP)), Domain: render.Shown(render.Line(d.Client.FQDN)),
		Description: render.Shown(render.Text(fmt.Sprintf("Velociraptor client %s on server %s%s (%s %s). Added by velohunt when hunt %s found IOC %q%s.",
			d.Client.ClientID, d.Hunt.Server, orgSuffix(d.Hunt.Org), d.Client.OS, d.Client.Release, d.Hunt.VRHuntID, render.Clip(d.IOC.Value, 100), more))),
		Tags: "velohunt," + group[0].Marker, IOCLinks: iocIDs})
	if errors.Is(err, iris.ErrDuplicateAsset) {
		found := false
		if id, found, err = w.findAsset(ctx, c, cid, name, typeID, true); err != nil {
			return 0, err
		} else if !found {
			return 0, fmt.Errorf("IRIS reports a duplicate asset %q that its list does not show", name)
		}
		return id, w.recordAndLink(ctx, d, cid, id, iocIDs)
	} else if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if list, ok := c.assets[cid]; ok {
		c.assets[cid] = append(list, iris.Asset{ID: id, Name: name, TypeID: typeID})
	}
	c.mu.Unlock()
	return id, w.Store.SetAssetID(ctx, cid, d.Hunt.Server, d.Client.ClientID, id)
}

func orgSuffix(org string) string {
	if org == "" {
		return ""
	}
	return " (org " + org + ")"
}

func (w *Writer) recordAndLink(ctx context.Context, d store.HitDetail, cid, assetID int64, iocIDs []int64) error {
	if err := w.Store.SetAssetID(ctx, cid, d.Hunt.Server, d.Client.ClientID, assetID); err != nil {
		return err
	}
	return w.link(ctx, cid, assetID, iocIDs)
}

// findAsset looks for an asset by name (case-insensitive) and type, in the
// batch's list of the case's assets unless fresh is set.
func (w *Writer) findAsset(ctx context.Context, c *batchCache, cid int64, name string, typeID int64, fresh bool) (int64, bool, error) {
	c.mu.Lock()
	list, ok := c.assets[cid]
	c.mu.Unlock()
	if !ok || fresh {
		var err error
		if list, err = w.api().ListAssets(ctx, cid); err != nil {
			return 0, false, err
		}
		c.mu.Lock()
		c.assets[cid] = list
		c.mu.Unlock()
	}
	for _, a := range list {
		if a.TypeID == typeID && strings.EqualFold(a.Name, name) {
			return a.ID, true, nil
		}
	}
	return 0, false, nil
}

// link adds the IOCs to the asset's links, keeping the others (IRIS
// replaces all links on update): one read, and one update if any is
// missing. Links to one asset are never updated concurrently.
func (w *Writer) link(ctx context.Context, cid, assetID int64, iocIDs []int64) error {
	if until := w.heldUntil(fmt.Sprintf("asset:%d", assetID)); w.Now().Before(until) {
		return &heldError{until: until}
	}
	defer w.locks.lock(fmt.Sprintf("asset:%d", assetID))()
	a, err := w.api().Asset(ctx, cid, assetID)
	if err != nil {
		return err
	}
	links := slices.Clone(a.LinkedIOCs)
	for _, id := range iocIDs {
		if !slices.Contains(links, id) {
			links = append(links, id)
		}
	}
	if len(links) == len(a.LinkedIOCs) {
		return nil
	}
	return w.api().SetAssetIOCLinks(ctx, cid, a, links)
}
