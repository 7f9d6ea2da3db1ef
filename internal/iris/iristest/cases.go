package iristest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (s *Server) caseRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /manage/cases/list", s.api("GET /manage/cases/list", false, func(q *request) {
		var rows []map[string]any
		for id := int64(1); id <= s.nextID; id++ {
			c, ok := s.cases[id]
			if !ok || !q.user.Admin && q.user.Cases != nil && !q.user.Cases[id] {
				continue
			}
			closeDate, state := "", "Open"
			if !c.Open {
				closeDate, state = time.Now().Format("01/02/2006"), "Closed"
			}
			rows = append(rows, map[string]any{"case_id": c.ID, "case_uuid": "uuid-" + strconv.FormatInt(c.ID, 10),
				"case_name": "#" + strconv.FormatInt(c.ID, 10) + " - " + c.Name, "case_description": c.Description,
				"client_name": s.customers[c.CustomerID], "case_open_date": c.OpenDate.Format("01/02/2006"),
				"case_close_date": closeDate, "case_soc_id": "", "state_name": state, "access_level": 4})
		}
		reply(q.w, 200, true, "", rows)
	}))
	mux.HandleFunc("GET /manage/cases/{id}", s.api("GET /manage/cases/{id}", false, func(q *request) {
		id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
		c, ok := s.cases[id]
		if !q.user.Admin && (q.user.Cases != nil && !q.user.Cases[id] || !ok) {
			reply(q.w, 403, false, "Permission denied", map[string]any{"user_id": q.user.ID, "case_id": id})
			return
		}
		if !ok {
			reply(q.w, 400, false, "Case ID "+strconv.FormatInt(id, 10)+" not found", nil)
			return
		}
		var closeDate any
		state := "Open"
		if !c.Open {
			closeDate, state = time.Now().Format("2006-01-02"), "Closed"
		}
		reply(q.w, 200, true, "", map[string]any{"case_id": c.ID, "case_name": "#" + strconv.FormatInt(c.ID, 10) + " - " + c.Name,
			"case_description": c.Description, "customer_id": c.CustomerID, "customer_name": s.customers[c.CustomerID],
			"open_date": c.OpenDate.Format("2006-01-02"), "close_date": closeDate, "state_name": state, "case_tags": c.Tags,
			"custom_attributes": c.Custom})
	}))
	mux.HandleFunc("POST /manage/cases/add", s.api("POST /manage/cases/add", false, func(q *request) {
		name, desc := str(q.body["case_name"]), str(q.body["case_description"])
		cust := toInt(q.body["case_customer"])
		_, socOK := q.body["case_soc_id"]
		if len(name) < 2 || len(desc) < 2 || s.customers[cust] == "" || !socOK {
			reply(q.w, 400, false, "Error creating case - check server logs", nil)
			return
		}
		// IRIS 2.4.20 ignores case_tags here: only an update stores tags.
		c := &Case{ID: s.id(), Name: name, Description: desc, CustomerID: cust, Open: true, OpenDate: time.Now()}
		s.cases[c.ID] = c
		// The service user gets access to new cases, as an admin would grant.
		for _, u := range s.users {
			if u.Cases != nil {
				u.Cases[c.ID] = true
			}
		}
		reply(q.w, 200, true, "Case created", map[string]any{"case_id": c.ID,
			"case_name": "#" + strconv.FormatInt(c.ID, 10) + " - " + c.Name, "open_date": c.OpenDate.Format("2006-01-02")})
	}))
	mux.HandleFunc("POST /manage/cases/close/{id}", s.api("POST /manage/cases/close/{id}", false, func(q *request) {
		s.setOpen(q, false)
	}))
	mux.HandleFunc("POST /manage/cases/reopen/{id}", s.api("POST /manage/cases/reopen/{id}", false, func(q *request) {
		s.setOpen(q, true)
	}))
	mux.HandleFunc("POST /manage/cases/update/{id}", s.api("POST /manage/cases/update/{id}", false, func(q *request) {
		id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
		c, ok := s.cases[id]
		if !ok {
			reply(q.w, 400, false, "Case ID "+strconv.FormatInt(id, 10)+" not found", nil)
			return
		}
		if v, ok := q.body["case_tags"]; ok {
			c.Tags = strings.TrimSpace(str(v))
		}
		if v, ok := q.body["custom_attributes"].(map[string]any); ok {
			if c.Custom == nil {
				c.Custom = map[string]any{}
			}
			for tab, fields := range v {
				fm, _ := fields.(map[string]any)
				st, _ := c.Custom[tab].(map[string]any)
				if st == nil {
					continue // IRIS ignores tabs the case template lacks
				}
				for name, val := range fm {
					if f, ok := st[name].(map[string]any); ok && f["type"] != "html" {
						f["value"] = val
					}
				}
			}
		}
		reply(q.w, 200, true, "Case updated", map[string]any{"case_id": c.ID})
	}))
}

func (s *Server) setOpen(q *request, open bool) {
	id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
	c, ok := s.cases[id]
	if !ok {
		reply(q.w, 400, false, "Case ID "+strconv.FormatInt(id, 10)+" not found", nil)
		return
	}
	c.Open = open
	reply(q.w, 200, true, "Case updated", map[string]any{"case_id": c.ID})
}

// SetCaseAttribute defines (as an administrator's case template would) and
// sets a text custom attribute on a case.
func (s *Server) SetCaseAttribute(id int64, tab, field, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cases[id]
	if c.Custom == nil {
		c.Custom = map[string]any{}
	}
	t, _ := c.Custom[tab].(map[string]any)
	if t == nil {
		t = map[string]any{}
		c.Custom[tab] = t
	}
	t[field] = map[string]any{"type": "input_string", "mandatory": false, "value": value}
}
