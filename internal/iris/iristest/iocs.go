package iristest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

func (s *Server) iocRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /case/ioc/list", s.api("GET /case/ioc/list", true, func(q *request) {
		var rows []map[string]any
		for id := int64(1); id <= s.nextID; id++ {
			i, ok := s.iocs[id]
			if !ok || !i.Cases[q.cid] {
				continue
			}
			var links []map[string]any
			for cid := range i.Cases {
				// Only cases the caller can access (get_ioc_links).
				if cid != q.cid && (q.user.Cases == nil || q.user.Cases[cid]) {
					links = append(links, map[string]any{"case_id": cid, "case_name": s.cases[cid].Name, "client_name": s.customers[s.cases[cid].CustomerID]})
				}
			}
			rows = append(rows, map[string]any{"ioc_id": i.ID, "ioc_uuid": i.UUID, "ioc_value": i.Value, "ioc_type_id": i.TypeID,
				"ioc_type": iocTypeNames[i.TypeID-1], "ioc_description": i.Description, "ioc_tags": i.Tags, "ioc_misp": nil,
				"tlp_name": tlpName(i.TLPID), "tlp_bscolor": "", "ioc_tlp_id": i.TLPID, "link": links, "misp_link": nil})
		}
		if rows == nil {
			rows = []map[string]any{}
		}
		reply(q.w, 200, true, "", map[string]any{"ioc": rows, "state": map[string]any{"object_state": s.cases[q.cid].IOCState,
			"object_last_update": time.Now().Format("2006-01-02T15:04:05.000000")}})
	}))
	mux.HandleFunc("GET /case/ioc/state", s.api("GET /case/ioc/state", true, func(q *request) {
		reply(q.w, 200, true, "", map[string]any{"object_state": s.cases[q.cid].IOCState,
			"object_last_update": time.Now().Format("2006-01-02T15:04:05.000000")})
	}))
	mux.HandleFunc("GET /case/ioc/{id}", s.api("GET /case/ioc/{id}", true, func(q *request) {
		i := s.caseIOC(q)
		if i == nil {
			return
		}
		reply(q.w, 200, true, "", s.iocDump(i))
	}))
	mux.HandleFunc("GET /dim/tasks/list/{count}", s.api("GET /dim/tasks/list/{count}", false, func(q *request) {
		n, _ := strconv.Atoi(q.r.PathValue("count"))
		rows := []map[string]any{}
		for k := len(s.tasks) - 1; k >= 0 && len(rows) < n; k-- {
			t := s.tasks[k]
			rows = append(rows, map[string]any{"state": "success", "case": fmt.Sprintf("Case #%d", t.caseID), "module": t.module,
				"task_id": t.id, "date_done": t.done.Format("2006-01-02T15:04:05.000000"), "user": "administrator"})
		}
		reply(q.w, 200, true, "", rows)
	}))
	mux.HandleFunc("GET /dim/hooks/options/ioc/list", s.api("GET /dim/hooks/options/ioc/list", true, func(q *request) {
		reply(q.w, 200, true, "", []map[string]any{{"manual_hook_ui_name": "Hunt in Velociraptor",
			"hook_name": "on_manual_trigger_ioc", "module_name": "iris_webhooks_module"}})
	}))
	mux.HandleFunc("POST /dim/hooks/call", s.api("POST /dim/hooks/call", true, func(q *request) {
		targets, _ := q.body["targets"].([]any)
		if q.body["hook_name"] != "on_manual_trigger_ioc" || q.body["type"] != "ioc" || len(targets) == 0 {
			reply(q.w, 400, false, "Missing targets", nil)
			return
		}
		for _, t := range targets {
			if i, ok := s.iocs[toInt(t)]; ok {
				s.fireIOC("manual", i, q.cid)
			}
		}
		reply(q.w, 200, true, fmt.Sprintf("Queued task with %d objects", len(targets)), nil)
	}))
	mux.HandleFunc("POST /case/ioc/add", s.api("POST /case/ioc/add", true, s.addIOC))
	mux.HandleFunc("POST /case/ioc/update/{id}", s.api("POST /case/ioc/update/{id}", true, s.updateIOC))
	mux.HandleFunc("POST /case/ioc/delete/{id}", s.api("POST /case/ioc/delete/{id}", true, func(q *request) {
		i := s.caseIOC(q)
		if i == nil {
			return
		}
		delete(i.Cases, q.cid)
		if len(i.Cases) > 0 {
			// IRIS 2.4.20 (delete_ioc): an unlink moves no counter and
			// fires no hook.
			reply(q.w, 200, true, fmt.Sprintf("IOC %d unlinked", i.ID), nil)
			return
		}
		delete(s.iocs, i.ID)
		s.cases[q.cid].IOCState++
		reply(q.w, 200, true, fmt.Sprintf("IOC %d deleted", i.ID), nil)
	}))
}

func tlpName(id int64) string {
	if id >= 1 && int(id) <= len(tlpNames) {
		return tlpNames[id-1]
	}
	return ""
}

// caseIOC finds the IOC of the path in the request's case, or answers 400.
func (s *Server) caseIOC(q *request) *IOC {
	id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	i, ok := s.iocs[id]
	if !ok || !i.Cases[q.cid] {
		reply(q.w, 400, false, "Invalid IOC ID for this case", nil)
		return nil
	}
	return i
}

func (s *Server) iocDump(i *IOC) map[string]any {
	var custom any
	if i.Custom != nil {
		custom = i.Custom
	}
	return map[string]any{"ioc_id": i.ID, "ioc_uuid": i.UUID, "ioc_value": i.Value, "ioc_type_id": i.TypeID,
		"ioc_description": i.Description, "ioc_tags": i.Tags, "user_id": i.UserID, "ioc_misp": nil, "ioc_tlp_id": i.TLPID,
		"custom_attributes": custom, "ioc_enrichment": nil, "modification_history": nil,
		"ioc_type": map[string]any{"type_id": i.TypeID, "type_name": iocTypeNames[i.TypeID-1], "type_description": iocTypeNames[i.TypeID-1],
			"type_taxonomy": nil, "type_validation_regex": nil, "type_validation_expect": nil}}
}

func (s *Server) addIOC(q *request) {
	value := str(q.body["ioc_value"])
	rawType, hasType := q.body["ioc_type_id"]
	if !hasType || rawType == nil {
		reply(q.w, 400, false, "Not a valid IOC type", nil)
		return
	}
	typeID := toInt(rawType)
	if typeID < 1 || int(typeID) > len(iocTypeNames) {
		reply(q.w, 400, false, "Data error", map[string]any{"ioc_type_id": []string{"Invalid IOC type ID"}})
		return
	}
	if len(value) < 1 {
		reply(q.w, 400, false, "Data error", map[string]any{"ioc_value": []string{"Shorter than minimum length 1."}})
		return
	}
	for _, i := range s.iocs {
		if i.Value == value && i.TypeID == typeID {
			if i.Cases[q.cid] {
				reply(q.w, 200, true, "IOC already exists and linked to this case", s.iocDump(i))
				return
			}
			// IRIS 2.4: the existing row is linked; description, tags and
			// TLP sent now are ignored, user_id stays the last writer's, and
			// the case's IOC counter does not move (add_ioc returns before
			// update_ioc_state). The create hook fires again.
			i.Cases[q.cid] = true
			s.fireIOC("create", i, q.cid)
			reply(q.w, 200, true, "IOC already existed in DB. Updated with info on DB.", s.iocDump(i))
			return
		}
	}
	i := &IOC{ID: s.id(), UUID: fmt.Sprintf("ioc-uuid-%d", s.nextID), Value: value, TypeID: typeID, TLPID: toInt(q.body["ioc_tlp_id"]),
		Description: str(q.body["ioc_description"]), Tags: str(q.body["ioc_tags"]), UserID: q.user.ID, Cases: map[int64]bool{q.cid: true}}
	if ca, ok := q.body["custom_attributes"]; ok && ca != nil {
		// Create starts from the template; values for known fields are copied.
		i.Custom = cloneTemplate(s.templates["ioc"])
		mergeValues(i.Custom, ca, true)
	}
	s.iocs[i.ID] = i
	s.cases[q.cid].IOCState++
	s.fireIOC("create", i, q.cid)
	reply(q.w, 200, true, "IOC added", s.iocDump(i))
}

func (s *Server) updateIOC(q *request) {
	id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	if i, ok := s.iocs[id]; !ok || !i.Cases[q.cid] {
		// IRIS 2.4.20 wraps its "Invalid IOC ID for this case" in a second
		// error whose data it cannot serialise: an HTML 500.
		htmlError(q.w, http.StatusInternalServerError)
		return
	}
	i := s.caseIOC(q)
	if ca, ok := q.body["custom_attributes"]; ok {
		if tabs, _ := ca.(map[string]any); i.Custom == nil && len(tabs) > 0 {
			// IRIS crashes on None.get and answers with an HTML 500.
			htmlError(q.w, http.StatusInternalServerError)
			return
		}
		// An empty object names no tab: IRIS's merge loops over
		// nothing, and null attributes stay null.
		if i.Custom != nil {
			mergeValues(i.Custom, ca, false)
		}
	}
	if v, ok := q.body["ioc_value"]; ok {
		i.Value = str(v)
	}
	if v, ok := q.body["ioc_type_id"]; ok {
		t := toInt(v)
		if t < 1 || int(t) > len(iocTypeNames) {
			reply(q.w, 400, false, "Data error", map[string]any{"ioc_type_id": []string{"Invalid IOC type ID"}})
			return
		}
		i.TypeID = t
	}
	if v, ok := q.body["ioc_description"]; ok {
		i.Description = str(v)
	}
	if v, ok := q.body["ioc_tags"]; ok {
		if _, isList := v.([]any); isList {
			htmlError(q.w, http.StatusInternalServerError) // tags must be a CSV string
			return
		}
		i.Tags = str(v)
	}
	if v, ok := q.body["ioc_tlp_id"]; ok {
		i.TLPID = toInt(v)
	}
	i.UserID = q.user.ID
	// Only the case of the request sees its counter move, although the
	// IOC changes in every case that links it (business/iocs.py update).
	s.cases[q.cid].IOCState++
	s.fireIOC("update", i, q.cid)
	reply(q.w, 200, true, fmt.Sprintf("Updated ioc %q", i.Value), s.iocDump(i))
}

// cloneTemplate deep-copies an attribute template.
func cloneTemplate(t map[string]any) map[string]any {
	if t == nil {
		return map[string]any{}
	}
	b, _ := json.Marshal(t)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// mergeValues writes {tab:{field:value}} into existing tabs and fields only;
// html fields are skipped on update (IRIS's merge_custom_attributes).
func mergeValues(stored map[string]any, in any, create bool) {
	tabs, ok := in.(map[string]any)
	if !ok {
		return
	}
	for tab, fields := range tabs {
		st, ok := stored[tab].(map[string]any)
		if !ok {
			continue
		}
		fm, ok := fields.(map[string]any)
		if !ok {
			continue
		}
		for name, v := range fm {
			f, ok := st[name].(map[string]any)
			if !ok {
				continue
			}
			if f["type"] == "html" && !create {
				continue
			}
			f["value"] = v
		}
	}
}

// hookOf names the IRIS hook of a webhook event.
var hookOf = map[string]string{"create": "on_postload_ioc_create", "update": "on_postload_ioc_update", "manual": "on_manual_trigger_ioc"}

// fireIOC posts an IOC event like iris-webhooks-module, asynchronously,
// with {"iocs":"iocs"} as the body mapping, from the case cid; when the post
// is done, the task is listed by /dim/tasks/list with that case, as IRIS's
// Celery worker records it. s.mu is held.
func (s *Server) fireIOC(event string, i *IOC, cid int64) {
	record := func() {
		s.tasks = append(s.tasks, task{id: fmt.Sprintf("task-%d", len(s.tasks)+1), caseID: cid,
			module: "iris_webhooks_module::" + hookOf[event], done: time.Now().UTC()})
	}
	if s.webhookURL == "" {
		record() // the module runs, and fails to post
		return
	}
	body, _ := json.Marshal(map[string]any{"iocs": []any{s.iocDump(i)}})
	url, hdr := s.webhookURL+"/"+event, s.webhookHdr
	s.hooks.Add(1)
	go func() {
		defer s.hooks.Done()
		defer func() {
			s.mu.Lock()
			late := s.taskDelay[cid]
			s.mu.Unlock()
			if late > 0 {
				select {
				case <-s.hookCtx.Done():
				case <-time.After(late):
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			record()
		}()
		req, err := http.NewRequestWithContext(s.hookCtx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		// Like the module: no retry; non-2xx answers are only logged.
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
}

// DelayTasks makes the module tasks run from case cid listed d after their
// webhook was posted (a busy Celery worker or result backend).
func (s *Server) DelayTasks(cid int64, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taskDelay == nil {
		s.taskDelay = map[int64]time.Duration{}
	}
	s.taskDelay[cid] = d
}

// TriggerManual fires the manual hook ("Hunt in Velociraptor") on IOCs,
// from case cid, as an analyst's click in that case does.
func (s *Server) TriggerManual(cid int64, ids ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if i, ok := s.iocs[id]; ok {
			s.fireIOC("manual", i, cid)
		}
	}
}

// IOCByID returns a copy of an IOC.
func (s *Server) IOCByID(id int64) (IOC, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.iocs[id]
	if !ok {
		return IOC{}, false
	}
	c := *i
	c.Custom = cloneTemplate(i.Custom)
	if i.Custom == nil {
		c.Custom = nil
	}
	return c, true
}

// AddIOCDirect adds an IOC without custom attributes (null), as an API
// client that omits the key does.
func (s *Server) AddIOCDirect(cid int64, typeName, value string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := &IOC{ID: s.id(), Value: value, TypeID: TypeID(typeName), TLPID: 2, UserID: 1, Cases: map[int64]bool{cid: true}}
	s.iocs[i.ID] = i
	s.cases[cid].IOCState++
	return i.ID
}
