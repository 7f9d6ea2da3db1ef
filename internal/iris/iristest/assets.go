package iristest

import (
	"net/http"
	"strconv"
	"strings"
)

// Asset is a simulated asset.
type Asset struct {
	ID                 int64
	CaseID             int64
	Name               string
	TypeID             int64
	AnalysisStatusID   int64 // 0 = null
	CompromiseStatusID int64
	Description        string
	IP                 string
	Domain             string
	Tags               string
	IOCLinks           []int64
	Custom             map[string]any
}

func (s *Server) assetRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /case/assets/list", s.api("GET /case/assets/list", true, func(q *request) {
		rows := []map[string]any{}
		for id := int64(1); id <= s.nextID; id++ {
			a, ok := s.assets[id]
			// IRIS inner-joins the analysis status: assets without one vanish.
			if !ok || a.CaseID != q.cid || a.AnalysisStatusID == 0 {
				continue
			}
			var links any
			if len(a.IOCLinks) > 0 {
				l := []map[string]any{}
				for _, iid := range a.IOCLinks {
					if i, ok := s.iocs[iid]; ok {
						l = append(l, map[string]any{"ioc_id": iid, "ioc_value": i.Value, "asset_id": a.ID})
					}
				}
				links = l
			}
			rows = append(rows, map[string]any{"asset_id": a.ID, "asset_uuid": "asset-" + strconv.FormatInt(a.ID, 10),
				"asset_name": a.Name, "asset_type": assetTypeNames[a.TypeID-1], "asset_type_id": a.TypeID,
				"asset_description": a.Description, "asset_domain": a.Domain, "asset_ip": a.IP,
				"asset_compromise_status_id": a.CompromiseStatusID, "analysis_status": analysisStatusNames[a.AnalysisStatusID-1],
				"analysis_status_id": a.AnalysisStatusID, "asset_tags": a.Tags, "link": []any{}, "ioc_links": links})
		}
		reply(q.w, 200, true, "", map[string]any{"assets": rows, "state": map[string]any{"object_state": s.cases[q.cid].AssetState}})
	}))
	mux.HandleFunc("GET /case/assets/{id}", s.api("GET /case/assets/{id}", true, func(q *request) {
		a := s.caseAsset(q)
		if a == nil {
			return
		}
		reply(q.w, 200, true, "", s.assetDump(a, true))
	}))
	mux.HandleFunc("POST /case/assets/add", s.api("POST /case/assets/add", true, func(q *request) {
		a := &Asset{CaseID: q.cid}
		if !s.applyAsset(q, a, true) {
			return
		}
		a.ID = s.id()
		s.assets[a.ID] = a
		s.cases[q.cid].AssetState++
		// The add reply does not echo ioc_links.
		reply(q.w, 200, true, "Asset added", s.assetDump(a, false))
	}))
	mux.HandleFunc("POST /case/assets/update/{id}", s.api("POST /case/assets/update/{id}", true, func(q *request) {
		a := s.caseAsset(q)
		if a == nil {
			return
		}
		c := *a
		if !s.applyAsset(q, &c, false) {
			return
		}
		*a = c
		s.cases[q.cid].AssetState++
		reply(q.w, 200, true, "Updated asset "+a.Name, s.assetDump(a, false))
	}))
}

func (s *Server) caseAsset(q *request) *Asset {
	id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	a, ok := s.assets[id]
	if !ok || a.CaseID != q.cid {
		reply(q.w, 400, false, "Invalid asset ID for this case", nil)
		return nil
	}
	return a
}

// applyAsset validates the body onto a (create or update) and answers the
// error itself; it reports whether to go on.
func (s *Server) applyAsset(q *request, a *Asset, create bool) bool {
	b := q.body
	name, okName := b["asset_name"].(string)
	rawType, okType := b["asset_type_id"]
	if !okName || name == "" || !okType || rawType == nil {
		reply(q.w, 400, false, "Data error", map[string]any{"asset_name": []string{"Missing data for required field."}})
		return false
	}
	typeID := toInt(rawType)
	if typeID < 1 || int(typeID) > len(assetTypeNames) {
		reply(q.w, 400, false, "Data error", map[string]any{"asset_type_id": []string{"Invalid asset type ID"}})
		return false
	}
	for _, o := range s.assets {
		if o.CaseID == q.cid && o.ID != a.ID && o.TypeID == typeID && strings.EqualFold(o.Name, name) {
			// IRIS 2.4.20's exact reply: the reason is a list in data.
			reply(q.w, 400, false, "Data error", []string{"Asset name already exists in this case"})
			return false
		}
	}
	a.Name, a.TypeID = name, typeID
	if v, ok := b["analysis_status_id"]; ok && v != nil {
		a.AnalysisStatusID = toInt(v)
	}
	if v, ok := b["asset_compromise_status_id"]; ok {
		a.CompromiseStatusID = toInt(v)
	}
	for key, dst := range map[string]*string{"asset_description": &a.Description, "asset_ip": &a.IP, "asset_domain": &a.Domain} {
		if v, ok := b[key]; ok {
			*dst = str(v)
		}
	}
	if v, ok := b["asset_tags"]; ok {
		if _, isList := v.([]any); isList {
			htmlError(q.w, http.StatusInternalServerError)
			return false
		}
		a.Tags = str(v)
	}
	if v, ok := b["ioc_links"]; ok {
		list, _ := v.([]any)
		a.IOCLinks = a.IOCLinks[:0:0]
		for _, x := range list {
			a.IOCLinks = append(a.IOCLinks, toInt(x))
		}
	}
	if create {
		if ca, ok := b["custom_attributes"]; ok && ca != nil {
			a.Custom = cloneTemplate(s.templates["asset"])
		}
	}
	return true
}

func (s *Server) assetDump(a *Asset, withLinks bool) map[string]any {
	d := map[string]any{"asset_id": a.ID, "asset_name": a.Name, "asset_type_id": a.TypeID, "asset_description": a.Description,
		"asset_ip": a.IP, "asset_domain": a.Domain, "asset_tags": a.Tags, "case_id": a.CaseID,
		"asset_compromise_status_id": a.CompromiseStatusID, "custom_attributes": a.Custom,
		"asset_type": map[string]any{"asset_id": a.TypeID, "asset_name": assetTypeNames[a.TypeID-1]}}
	if a.AnalysisStatusID != 0 {
		d["analysis_status_id"] = a.AnalysisStatusID
		d["analysis_status"] = map[string]any{"id": a.AnalysisStatusID, "name": analysisStatusNames[a.AnalysisStatusID-1]}
	} else {
		d["analysis_status_id"] = nil
	}
	if withLinks {
		linked := []map[string]any{}
		for _, iid := range a.IOCLinks {
			if i, ok := s.iocs[iid]; ok {
				linked = append(linked, map[string]any{"ioc_id": iid, "ioc_value": i.Value, "ioc_type_id": i.TypeID})
			}
		}
		d["linked_ioc"] = linked
	}
	return d
}

// Assets returns copies of the assets of a case (including those IRIS's
// list would hide).
func (s *Server) Assets(cid int64) []Asset {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Asset
	for id := int64(1); id <= s.nextID; id++ {
		if a, ok := s.assets[id]; ok && a.CaseID == cid {
			c := *a
			c.IOCLinks = append([]int64(nil), a.IOCLinks...)
			out = append(out, c)
		}
	}
	return out
}
