package iristest

import (
	"fmt"
	"net/http"
	"time"
)

// Evidence is a simulated evidence record (IRIS's CaseReceivedFile).
type Evidence struct {
	ID              int64
	CaseID          int64
	UUID            string
	Filename        string
	Size            int64
	Hash            string
	Description     string
	TypeID          int64
	AcquisitionDate any // as sent
	ChainOfCustody  any // JSON, as sent
	UserID          int64
	Added           time.Time
}

// evidenceTypeNames are the first evidence types of a fresh IRIS 2.4.20.
var evidenceTypeNames = []string{"Unspecified", "HDD image - Generic", "HDD image - DD - Other", "HDD image - DD - Windows",
	"HDD image - DD - Unix", "HDD image - DD - MacOS"}

func (s *Server) evidenceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /manage/evidence-types/list", s.api("GET /manage/evidence-types/list", false, func(q *request) {
		rows := []map[string]any{}
		for i, n := range evidenceTypeNames {
			rows = append(rows, map[string]any{"id": i + 1, "name": n, "description": n})
		}
		reply(q.w, 200, true, "", rows)
	}))
	// IRIS 2.4.20 (case_rfiles_routes.py, CaseEvidenceSchema): filename is
	// required (2 characters or more), every other column as sent, the
	// custom attributes from the template; the reply dumps the record with
	// its type and user.
	mux.HandleFunc("POST /case/evidences/add", s.api("POST /case/evidences/add", true, func(q *request) {
		name := str(q.body["filename"])
		if len(name) < 2 {
			reply(q.w, 400, false, "Data error", map[string]any{"filename": []string{"Shorter than minimum length 2."}})
			return
		}
		e := &Evidence{ID: s.id(), CaseID: q.cid, UUID: fmt.Sprintf("evidence-uuid-%d", s.nextID), Filename: name, Size: toInt(q.body["file_size"]),
			Hash: str(q.body["file_hash"]), Description: str(q.body["file_description"]), TypeID: toInt(q.body["type_id"]),
			AcquisitionDate: q.body["acquisition_date"], ChainOfCustody: q.body["chain_of_custody"], UserID: q.user.ID, Added: time.Now()}
		if e.TypeID < 0 || int(e.TypeID) > len(evidenceTypeNames) {
			htmlError(q.w, http.StatusInternalServerError) // a foreign key IRIS does not check first
			return
		}
		s.evidences[e.ID] = e
		reply(q.w, 200, true, "Evidence added", s.evidenceDump(e))
	}))
	mux.HandleFunc("GET /case/evidences/list", s.api("GET /case/evidences/list", true, func(q *request) {
		rows := []map[string]any{}
		for id := int64(1); id <= s.nextID; id++ {
			if e, ok := s.evidences[id]; ok && e.CaseID == q.cid {
				rows = append(rows, s.evidenceDump(e))
			}
		}
		reply(q.w, 200, true, "", map[string]any{"evidences": rows, "state": map[string]any{"object_state": len(rows)}})
	}))
}

func (s *Server) evidenceDump(e *Evidence) map[string]any {
	var typ any
	if e.TypeID > 0 {
		typ = map[string]any{"id": e.TypeID, "name": evidenceTypeNames[e.TypeID-1], "description": evidenceTypeNames[e.TypeID-1]}
	}
	login := ""
	for _, u := range s.users {
		if u.ID == e.UserID {
			login = u.Login
		}
	}
	return map[string]any{"id": e.ID, "file_uuid": e.UUID, "case_id": e.CaseID, "case": e.CaseID, "filename": e.Filename,
		"file_size": e.Size, "file_hash": e.Hash, "file_description": e.Description, "type_id": e.TypeID, "type": typ,
		"acquisition_date": e.AcquisitionDate, "chain_of_custody": e.ChainOfCustody, "custom_attributes": map[string]any{},
		"user_id": e.UserID, "user": map[string]any{"id": e.UserID, "user_login": login, "user_name": login},
		"date_added": e.Added.Format("2006-01-02T15:04:05.000000"), "start_date": nil, "end_date": nil, "modification_history": nil}
}
