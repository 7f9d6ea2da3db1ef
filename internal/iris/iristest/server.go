// Package iristest is a simulated DFIR-IRIS 2.4 for tests, the demo and
// benchmarks. It serves the legacy REST routes velohunt uses over HTTP and
// follows contracts/iris-api.md, traps included: HTTP 200 for every success
// (duplicate IOCs too), 403 for an unknown case, the silent fallback to the
// user's current case when cid is missing, null custom attributes that make
// a later attribute update fail with an HTML 500, html fields skipped on
// update, duplicate assets refused with 400, and events listed without their
// assets. It can post webhooks like iris-webhooks-module and inject faults.
package iristest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// User is an IRIS user with an API key.
type User struct {
	ID      int64
	Login   string
	Key     string
	Admin   bool
	CtxCase int64
	// Cases the user has access to; nil means all (admins).
	Cases map[int64]bool
}

// Server is a running simulated IRIS.
type Server struct {
	srv *httptest.Server

	mu         sync.Mutex
	users      map[string]*User // by key
	customers  map[int64]string
	cases      map[int64]*Case
	iocs       map[int64]*IOC
	assets     map[int64]*Asset
	events     map[int64]*Event
	evidences  map[int64]*Evidence
	dsFolders  map[int64]*DSFolder
	dsFiles    map[int64]*DSFile
	templates  map[string]map[string]any // object type → attribute template
	nextID     int64
	requests   map[string]int // "METHOD /route" → count
	faults     Faults
	rnd        *rand.Rand
	tasks      []task // module tasks run, oldest first (/dim/tasks/list)
	taskDelay  map[int64]time.Duration
	webhookURL string
	webhookHdr map[string]string
	hooks      sync.WaitGroup
	hookCtx    context.Context
	hookCancel context.CancelFunc
	load       Load
	workers    chan struct{} // one token per request served at once
	inflight   int
	maxFlight  int
	updating   map[string]bool // update paths in flight
	overlaps   []string        // update paths seen twice in flight at once
	// Version is reported by /api/versions.
	Version string
}

// Faults makes a share of requests fail, like an IRIS under load.
type Faults struct {
	// Rate is the probability (0..1) that a request fails before it runs.
	Rate float64
	// Statuses to pick from for failures; 0 means a dropped connection.
	Statuses []int
	// AfterRate is the probability that a request runs and commits, but
	// its answer is lost (a 502 from the proxy): the case of a crash
	// between IRIS's answer and the caller's commit.
	AfterRate float64
	// Down makes every request fail with 503.
	Down bool
	// SlowRate is the probability that a request waits SlowDelay before it
	// runs (and commits): a client with a shorter timeout sees a timeout
	// although IRIS did the work.
	SlowRate  float64
	SlowDelay time.Duration
}

// Load makes the server take time per request, like a real IRIS.
type Load struct {
	// ServiceTime is how long each request takes to serve.
	ServiceTime time.Duration
	// Workers is how many requests are served at once; the others wait.
	// 0 means no limit. A stock IRIS runs one gunicorn eventlet worker,
	// which serves about 43 writes per second from one client: Workers 1
	// with a ServiceTime of 22ms behaves like it.
	Workers int
}

// SetLoad replaces the load settings.
func (s *Server) SetLoad(l Load) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load = l
	s.workers = nil
	if l.Workers > 0 {
		s.workers = make(chan struct{}, l.Workers)
	}
}

// MaxInFlight returns the most requests that were in the server at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxFlight
}

// Overlaps returns the update routes (an asset's links, an IOC's
// attributes) that received a request while an earlier one to the same
// object was still running: IRIS replaces links and attributes wholesale,
// so the later of two overlapping updates may undo the other.
func (s *Server) Overlaps() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.overlaps...)
}

// serve counts the request in flight and holds a worker for its service
// time; it returns the release.
func (s *Server) serve(r *http.Request) func() {
	key := ""
	if r.Method == http.MethodPost && (strings.HasPrefix(r.URL.Path, "/case/assets/update/") || strings.HasPrefix(r.URL.Path, "/case/ioc/update/")) {
		key = r.URL.Path
	}
	s.mu.Lock()
	l, sem := s.load, s.workers
	s.inflight++
	s.maxFlight = max(s.maxFlight, s.inflight)
	if key != "" {
		if s.updating == nil {
			s.updating = map[string]bool{}
		}
		if s.updating[key] {
			s.overlaps = append(s.overlaps, key)
		}
		s.updating[key] = true
	}
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		s.inflight--
		delete(s.updating, key)
		s.mu.Unlock()
	}
	if sem != nil {
		sem <- struct{}{}
	}
	if l.ServiceTime > 0 {
		time.Sleep(l.ServiceTime)
	}
	return func() {
		if sem != nil {
			<-sem
		}
		release()
	}
}

// task is a module task as IRIS's Celery result backend records it.
type task struct {
	id     string
	caseID int64
	module string
	done   time.Time
}

// Case is a simulated case.
type Case struct {
	ID          int64
	Name        string
	Description string
	CustomerID  int64
	Tags        string
	Open        bool
	OpenDate    time.Time
	IOCState    int64
	AssetState  int64
	EventState  int64
	Custom      map[string]any
}

// IOC is a simulated global IOC (IRIS 2.4: one row, linked to cases).
type IOC struct {
	ID          int64
	UUID        string
	Value       string
	TypeID      int64
	TLPID       int64
	Description string
	Tags        string
	UserID      int64
	Custom      map[string]any // nil = JSON null
	Cases       map[int64]bool
}

// Start starts a simulated IRIS with an administrator (key "admin-key",
// id 1) and a service user "velohunt" (key "velohunt-key", id 2) with access
// to every case it creates, one customer (id 1, "IrisInitialClient") and
// case #1 ("Initial case"), as a fresh install has.
func Start() *Server {
	s := &Server{
		users:     map[string]*User{},
		customers: map[int64]string{1: "IrisInitialClient"},
		cases:     map[int64]*Case{},
		iocs:      map[int64]*IOC{},
		assets:    map[int64]*Asset{},
		events:    map[int64]*Event{},
		evidences: map[int64]*Evidence{},
		dsFolders: map[int64]*DSFolder{},
		dsFiles:   map[int64]*DSFile{},
		templates: map[string]map[string]any{},
		requests:  map[string]int{},
		nextID:    100,
		rnd:       rand.New(rand.NewPCG(1, 2)),
		Version:   "v2.4.20",
	}
	s.hookCtx, s.hookCancel = context.WithCancel(context.Background())
	s.users["admin-key"] = &User{ID: 1, Login: "administrator", Key: "admin-key", Admin: true, CtxCase: 1}
	s.users["velohunt-key"] = &User{ID: 2, Login: "velohunt", Key: "velohunt-key", CtxCase: 1, Cases: map[int64]bool{1: true}}
	s.cases[1] = &Case{ID: 1, Name: "Initial case", Description: "seed", CustomerID: 1, Open: true, OpenDate: time.Now()}
	s.srv = httptest.NewServer(s.routes())
	return s
}

// URL is the base URL.
// SetVersion changes the version /api/versions reports.
func (s *Server) SetVersion(v string) {
	s.mu.Lock()
	s.Version = v
	s.mu.Unlock()
}

func (s *Server) URL() string { return s.srv.URL }

// Close stops the server and waits for webhooks in flight.
func (s *Server) Close() {
	s.hookCancel()
	s.hooks.Wait()
	s.srv.Close()
}

// SetFaults replaces the fault settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Requests returns how many requests each route received ("POST /case/assets/add").
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// SetWebhook makes the server post IOC events to url + "/create",
// "/update" or "/manual", with the headers, as iris-webhooks-module
// configured with configs/iris-webhooks.json does.
func (s *Server) SetWebhook(url string, headers map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhookURL, s.webhookHdr = url, headers
}

func (s *Server) id() int64 { s.nextID++; return s.nextID }

// reply writes the legacy envelope.
func reply(w http.ResponseWriter, status int, ok bool, msg string, data any) {
	if data == nil {
		data = []any{}
	}
	st := "success"
	if !ok {
		st = "error"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": st, "message": msg, "data": data})
}

func htmlError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><html><head><title>%d</title></head><body><h1>%s</h1></body></html>", status, http.StatusText(status))
}

// request is the context of one authenticated call.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	user *User
	body map[string]any
	cid  int64
}

type handler func(q *request)

// api wraps a handler: faults, auth, body decoding and, for case routes,
// the cid resolution and access check.
func (s *Server) api(route string, caseRoute bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer s.serve(r)()
		s.mu.Lock()
		slow := s.faults.SlowRate > 0 && s.rnd.Float64() < s.faults.SlowRate
		delay := s.faults.SlowDelay
		s.mu.Unlock()
		if slow {
			time.Sleep(delay)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests[route]++
		if s.faults.Down {
			htmlError(w, http.StatusServiceUnavailable)
			return
		}
		if s.faults.Rate > 0 && s.rnd.Float64() < s.faults.Rate {
			s.fail(w)
			return
		}
		key := r.Header.Get("X-IRIS-AUTH")
		if key == "" {
			key = r.Header.Get("Authorization")
		}
		key = strings.TrimPrefix(key, "Bearer ")
		u, ok := s.users[key]
		if !ok || key == "" {
			reply(w, http.StatusUnauthorized, false, "Authentication required", nil)
			return
		}
		q := &request{w: w, r: r, user: u}
		if r.Method == http.MethodPost && strings.Contains(r.Header.Get("Content-Type"), "application/json") {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 100<<20)).Decode(&q.body); err != nil && !errors.Is(err, io.EOF) {
				reply(w, http.StatusBadRequest, false, "Invalid request", nil)
				return
			}
		}
		if caseRoute {
			q.cid = u.CtxCase
			if v := r.URL.Query().Get("cid"); v != "" {
				q.cid, _ = strconv.ParseInt(v, 10, 64)
			} else if v, ok := q.body["cid"]; ok {
				q.cid = toInt(v)
			}
			delete(q.body, "cid")
			c, exists := s.cases[q.cid]
			if !u.Admin && (u.Cases != nil && !u.Cases[q.cid] || !exists) {
				reply(w, http.StatusForbidden, false, "Permission denied",
					map[string]any{"user_id": u.ID, "case_id": q.cid, "error_uuid": "00000000-0000-4000-8000-000000000000"})
				return
			}
			if !exists || c == nil {
				reply(w, http.StatusNotFound, false, "Invalid case ID", nil)
				return
			}
		}
		if s.faults.AfterRate > 0 && s.rnd.Float64() < s.faults.AfterRate {
			h(&request{w: discard{}, r: r, user: u, body: q.body, cid: q.cid})
			htmlError(w, http.StatusBadGateway)
			return
		}
		h(q)
	}
}

func (s *Server) fail(w http.ResponseWriter) {
	st := 0
	if n := len(s.faults.Statuses); n > 0 {
		st = s.faults.Statuses[s.rnd.IntN(n)]
	}
	switch st {
	case 0:
		// Drop the connection: the client sees a transport error.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		htmlError(w, http.StatusBadGateway)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		htmlError(w, st)
	default:
		htmlError(w, st)
	}
}

// discard swallows a response whose answer is "lost".
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.caseRoutes(mux)
	s.iocRoutes(mux)
	s.refRoutes(mux)
	s.assetRoutes(mux)
	s.eventRoutes(mux)
	s.evidenceRoutes(mux)
	s.datastoreRoutes(mux)
	s.attributeRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Content-Type"), "application/json") {
			reply(w, http.StatusNotFound, false, "Resource not found", nil)
			return
		}
		htmlError(w, http.StatusNotFound)
	})
	return mux
}

func (s *Server) refRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/ping", s.api("GET /api/ping", false, func(q *request) { reply(q.w, 200, true, "pong", nil) }))
	mux.HandleFunc("GET /api/versions", s.api("GET /api/versions", false, func(q *request) {
		reply(q.w, 200, true, "", map[string]any{"iris_current": s.Version, "api_min": "2.0.4", "api_current": "2.0.5"})
	}))
	mux.HandleFunc("GET /user/whoami", s.api("GET /user/whoami", false, func(q *request) {
		reply(q.w, 200, true, "", map[string]any{"user_id": q.user.ID, "user_login": q.user.Login, "user_name": q.user.Login})
	}))
	mux.HandleFunc("GET /manage/ioc-types/list", s.api("GET /manage/ioc-types/list", false, func(q *request) {
		rows := make([]map[string]any, len(iocTypeNames))
		for i, n := range iocTypeNames {
			rows[i] = map[string]any{"type_id": i + 1, "type_name": n, "type_description": n, "type_taxonomy": nil,
				"type_validation_regex": nil, "type_validation_expect": nil}
		}
		reply(q.w, 200, true, "", rows)
	}))
	mux.HandleFunc("GET /manage/asset-type/list", s.api("GET /manage/asset-type/list", false, func(q *request) {
		rows := make([]map[string]any, len(assetTypeNames))
		for i, n := range assetTypeNames {
			rows[i] = map[string]any{"asset_id": i + 1, "asset_name": n, "asset_description": n}
		}
		reply(q.w, 200, true, "", rows)
	}))
	mux.HandleFunc("GET /manage/analysis-status/list", s.api("GET /manage/analysis-status/list", false, func(q *request) {
		reply(q.w, 200, true, "", idNameRows(analysisStatusNames, "id", "name"))
	}))
	mux.HandleFunc("GET /manage/event-categories/list", s.api("GET /manage/event-categories/list", false, func(q *request) {
		reply(q.w, 200, true, "", idNameRows(eventCategoryNames, "id", "name"))
	}))
	mux.HandleFunc("GET /manage/compromise-status/list", s.api("GET /manage/compromise-status/list", false, func(q *request) {
		reply(q.w, 200, true, "", []map[string]any{{"value": 0, "name": "To be determined"}, {"value": 1, "name": "Compromised"},
			{"value": 2, "name": "Not compromised"}, {"value": 3, "name": "Unknown"}})
	}))
	mux.HandleFunc("GET /manage/tlp/list", s.api("GET /manage/tlp/list", false, func(q *request) {
		reply(q.w, 200, true, "", idNameRows(tlpNames, "tlp_id", "tlp_name"))
	}))
}

func idNameRows(names []string, idKey, nameKey string) []map[string]any {
	rows := make([]map[string]any, len(names))
	for i, n := range names {
		rows[i] = map[string]any{idKey: i + 1, nameKey: n}
	}
	return rows
}

// toInt reads an int from a JSON number or numeric string (IRIS coerces).
func toInt(v any) int64 {
	switch x := v.(type) {
	case float64:
		return int64(x)
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	case json.Number:
		n, _ := x.Int64()
		return n
	}
	return 0
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
