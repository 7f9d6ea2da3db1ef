package iristest

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// attributeFor lists the template ids of a fresh install: 1 is the IOC
// template, as observed on IRIS 2.4.20.
var attributeFor = []string{"ioc", "event", "asset", "task", "note", "evidence", "case", "client"}

var fieldTypes = map[string]bool{"input_string": true, "input_textfield": true, "input_checkbox": true,
	"input_select": true, "input_date": true, "input_datetime": true, "raw": true, "html": true}

func (s *Server) attributeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /manage/attributes/list", s.api("GET /manage/attributes/list", false, func(q *request) {
		if !q.user.Admin {
			reply(q.w, 403, false, "Permission denied", nil)
			return
		}
		rows := []map[string]any{}
		for i, f := range attributeFor {
			content := s.templates[f]
			if content == nil {
				content = map[string]any{}
			}
			rows = append(rows, map[string]any{"attribute_id": i + 1, "attribute_for": f, "attribute_content": content})
		}
		reply(q.w, 200, true, "", rows)
	}))
	mux.HandleFunc("POST /manage/attributes/update/{id}", s.api("POST /manage/attributes/update/{id}", false, func(q *request) {
		if !q.user.Admin {
			reply(q.w, 403, false, "Permission denied", nil)
			return
		}
		id, _ := strconv.Atoi(q.r.PathValue("id"))
		if id < 1 || id > len(attributeFor) {
			reply(q.w, 400, false, "Invalid attribute ID", nil)
			return
		}
		var content map[string]any
		if err := json.Unmarshal([]byte(str(q.body["attribute_content"])), &content); err != nil {
			reply(q.w, 400, false, "Invalid JSON", nil)
			return
		}
		for tab, fields := range content {
			fm, ok := fields.(map[string]any)
			if !ok {
				reply(q.w, 400, false, "Tab "+tab+" must be an object", nil)
				return
			}
			for name, f := range fm {
				def, _ := f.(map[string]any)
				t, _ := def["type"].(string)
				_, hasMandatory := def["mandatory"]
				if !fieldTypes[t] || (t != "raw" && t != "html" && !hasMandatory) {
					reply(q.w, 400, false, "Invalid field "+name+" in tab "+tab, nil)
					return
				}
			}
		}
		kind := attributeFor[id-1]
		s.templates[kind] = content
		partial, _ := q.body["partial_overwrite"].(bool)
		complete, _ := q.body["complete_overwrite"].(bool)
		if kind == "ioc" && (partial || complete) {
			for _, i := range s.iocs {
				if i.Custom == nil || complete {
					i.Custom = cloneTemplate(content)
					continue
				}
				for tab, fields := range content {
					st, ok := i.Custom[tab].(map[string]any)
					if !ok {
						i.Custom[tab] = cloneTemplate(map[string]any{"x": fields})["x"]
						continue
					}
					for name, f := range fields.(map[string]any) {
						if _, ok := st[name]; !ok {
							st[name] = cloneTemplate(map[string]any{"x": f})["x"]
						}
					}
				}
			}
		}
		reply(q.w, 200, true, "Attribute updated", nil)
	}))
}
