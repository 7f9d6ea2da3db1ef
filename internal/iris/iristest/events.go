package iristest

import (
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// Event is a simulated timeline event.
type Event struct {
	ID         int64
	CaseID     int64
	Title      string
	Date       string
	TZ         string
	CategoryID int64
	Content    string
	Raw        string
	Source     string
	Tags       string
	Color      string
	Assets     []int64
	IOCs       []int64
	InGraph    any
	Added      time.Time
}

var (
	eventDateRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,6}$`)
	eventTZRe   = regexp.MustCompile(`^[+-]\d{2}:\d{2}$`)
	eventColors = map[string]bool{"#fff": true, "#1572E899": true, "#6861CE99": true, "#48ABF799": true,
		"#31CE3699": true, "#F2596199": true, "#FFAD4699": true}
)

func (s *Server) eventRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /case/timeline/events/list", s.api("GET /case/timeline/events/list", true, func(q *request) {
		rows := []map[string]any{}
		for id := int64(1); id <= s.nextID; id++ {
			e, ok := s.events[id]
			if !ok || e.CaseID != q.cid {
				continue
			}
			iocs := []map[string]any{}
			for _, iid := range e.IOCs {
				if i, ok := s.iocs[iid]; ok {
					iocs = append(iocs, map[string]any{"ioc_id": iid, "ioc_value": i.Value, "event_id": e.ID})
				}
			}
			// No "assets" key: IRIS 2.4 builds the list and drops it.
			rows = append(rows, map[string]any{"event_id": e.ID, "event_date": e.Date, "event_date_wtz": e.Date,
				"event_tz": e.TZ, "event_title": e.Title, "event_color": e.Color, "event_tags": e.Tags,
				"event_content": e.Content, "event_in_summary": false, "event_in_graph": e.InGraph,
				"category_name": eventCategoryNames[e.CategoryID-1], "event_category_id": e.CategoryID, "iocs": iocs})
		}
		reply(q.w, 200, true, "", map[string]any{"timeline": rows, "state": map[string]any{"object_state": s.cases[q.cid].EventState}})
	}))
	mux.HandleFunc("GET /case/timeline/events/{id}", s.api("GET /case/timeline/events/{id}", true, func(q *request) {
		id, _ := strconv.ParseInt(q.r.PathValue("id"), 10, 64)
		e, ok := s.events[id]
		if !ok || e.CaseID != q.cid {
			reply(q.w, 400, false, "Invalid event ID for this case", nil)
			return
		}
		d := eventDump(e)
		d["event_assets"], d["event_iocs"] = e.Assets, e.IOCs
		reply(q.w, 200, true, "", d)
	}))
	mux.HandleFunc("POST /case/timeline/events/add", s.api("POST /case/timeline/events/add", true, s.addEvent))
}

func (s *Server) addEvent(q *request) {
	b := q.body
	errs := map[string]any{}
	title := str(b["event_title"])
	if len([]rune(title)) < 2 {
		errs["event_title"] = []string{"Shorter than minimum length 2."}
	}
	if !eventDateRe.MatchString(str(b["event_date"])) {
		errs["event_date"] = []string{"Not a valid datetime."}
	}
	if !eventTZRe.MatchString(str(b["event_tz"])) {
		errs["event_tz"] = []string{"Invalid data type"}
	}
	cat := toInt(b["event_category_id"])
	if cat < 1 || int(cat) > len(eventCategoryNames) {
		errs["event_category_id"] = []string{"Invalid event category ID"}
	}
	assetsRaw, okA := b["event_assets"].([]any)
	iocsRaw, okI := b["event_iocs"].([]any)
	if !okA {
		errs["event_assets"] = []string{"Missing data for required field."}
	}
	if !okI {
		errs["event_iocs"] = []string{"Missing data for required field."}
	}
	if len(errs) > 0 {
		reply(q.w, 400, false, "Data error", errs)
		return
	}
	if _, isList := b["event_tags"].([]any); isList {
		htmlError(q.w, http.StatusInternalServerError)
		return
	}
	e := &Event{ID: s.id(), CaseID: q.cid, Title: title, Date: normDate(str(b["event_date"])), TZ: str(b["event_tz"]),
		CategoryID: cat, Content: str(b["event_content"]), Raw: str(b["event_raw"]), Source: str(b["event_source"]),
		Tags: str(b["event_tags"]), InGraph: b["event_in_graph"], Added: time.Now()}
	if c := str(b["event_color"]); eventColors[c] {
		e.Color = c
	}
	// Ids of other cases are dropped silently.
	for _, x := range assetsRaw {
		if a, ok := s.assets[toInt(x)]; ok && a.CaseID == q.cid {
			e.Assets = append(e.Assets, a.ID)
		}
	}
	for _, x := range iocsRaw {
		if i, ok := s.iocs[toInt(x)]; ok && i.Cases[q.cid] {
			e.IOCs = append(e.IOCs, i.ID)
		}
	}
	s.events[e.ID] = e
	s.cases[q.cid].EventState++
	reply(q.w, 200, true, "Event added", eventDump(e))
}

// normDate pads the fraction to 6 digits, as IRIS's replies do.
func normDate(d string) string {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i] == '.' {
			for len(d)-i-1 < 6 {
				d += "0"
			}
			break
		}
	}
	return d
}

func eventDump(e *Event) map[string]any {
	return map[string]any{"event_id": e.ID, "case_id": e.CaseID, "event_title": e.Title, "event_date": e.Date,
		"event_date_wtz": e.Date, "event_tz": e.TZ, "event_content": e.Content, "event_raw": e.Raw,
		"event_source": e.Source, "event_tags": e.Tags, "event_color": e.Color, "event_in_graph": e.InGraph,
		"event_category_id": e.CategoryID, "custom_attributes": map[string]any{}}
}

// Events returns copies of the events of a case.
func (s *Server) Events(cid int64) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for id := int64(1); id <= s.nextID; id++ {
		if e, ok := s.events[id]; ok && e.CaseID == cid {
			c := *e
			out = append(out, c)
		}
	}
	return out
}
