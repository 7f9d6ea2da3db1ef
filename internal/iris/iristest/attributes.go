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
		previous := s.templates[kind]
		s.templates[kind] = content
		partial, _ := q.body["partial_overwrite"].(bool)
		complete, _ := q.body["complete_overwrite"].(bool)
		if kind == "ioc" {
			for _, i := range s.iocs {
				i.Custom = pushTemplate(i.Custom, content, previous, partial, complete)
			}
		}
		reply(q.w, 200, true, "Attribute updated", nil)
	}))
}

// pushTemplate applies a saved template to one object's attributes the way
// IRIS 2.4.20's update_all_attributes (manage_attribute_db.py) does; it runs
// on every save, whatever the flags:
//   - complete overwrite, or null attributes: the object gets the template;
//   - partial overwrite: every tab of the template is reset to the
//     template's defaults (values lost), and tabs and fields the previous
//     template had and the new one lacks are removed;
//   - neither: missing tabs and fields are added, stored values are kept; a
//     field's type follows the template only when its value is the
//     template's default or both types are input_string (IRIS compares with
//     "input_text_field", which no field has); mandatory follows.
func pushTemplate(obj, target, previous map[string]any, partial, complete bool) map[string]any {
	if complete || obj == nil {
		return cloneTemplate(target)
	}
	for tab, tdef := range target {
		fields, _ := tdef.(map[string]any)
		st, ok := obj[tab].(map[string]any)
		if !ok || partial {
			obj[tab] = cloneTemplate(fields)
			continue
		}
		for name, f := range fields {
			def, _ := f.(map[string]any)
			cur, ok := st[name].(map[string]any)
			if !ok {
				st[name] = cloneTemplate(def)
				continue
			}
			if cur["type"] != def["type"] {
				textual := func(t any) bool { return t == "input_string" || t == "input_text_field" }
				if equalJSON(cur["value"], def["value"]) || (textual(cur["type"]) && textual(def["type"])) {
					cur["type"] = def["type"]
				}
			}
			if m, ok := def["mandatory"]; ok {
				cur["mandatory"] = m
			}
		}
	}
	if partial {
		for tab, pdef := range previous {
			tfields, inTarget := target[tab].(map[string]any)
			if !inTarget || len(tfields) == 0 {
				delete(obj, tab)
				continue
			}
			st, _ := obj[tab].(map[string]any)
			pfields, _ := pdef.(map[string]any)
			for name := range pfields {
				if _, ok := tfields[name]; !ok && st != nil {
					delete(st, name)
				}
			}
		}
	}
	return obj
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
