package intake

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
)

// Webhook events, the last path element of the webhook URL.
const (
	EventCreate = "create"
	EventUpdate = "update"
	EventManual = "manual"
)

// Webhook is the HTTP endpoint for IRIS's webhooks module. It checks the
// shared secret, validates and persists the event, wakes the intake loop
// and answers 202: the work happens later, so IRIS's worker never waits.
type Webhook struct {
	Store   Store
	Secret  string
	MaxBody int64
	// Wake is called after an event is stored.
	Wake func()
	// Limiter, when set, bounds the rate of requests without the secret.
	// Requests with it, IRIS's events, are never refused for load: IRIS
	// does not retry, and whoever can reach the endpoint must not be able
	// to make it refuse them.
	Limiter  *rate.Limiter
	Recorder Recorder
	// OwnUserID is velohunt's IRIS user: update events that only echo
	// velohunt's own writes (the tab) are answered and not stored. Create
	// and manual events are always stored: their user_id is the IOC's last
	// writer, which is velohunt once it wrote the tab.
	OwnUserID int64
	Logger    *slog.Logger

	rejects rejectLog
}

// ServeHTTP handles POST <path>/{create|update|manual}.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &statusWriter{ResponseWriter: w}
	w = rw
	defer func() {
		if h.Recorder != nil {
			h.Recorder.WebhookEvent(eventLabel(r.PathValue("event"), rw.status), http.StatusText(rw.status))
		}
	}()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, "only POST")
		return
	}
	if !h.authorised(r) {
		// Limited apart: a flood without the secret uses up only its own
		// allowance (the check is two hashes, as cheap as the limit).
		if h.Limiter != nil && !h.Limiter.Allow() {
			h.rejected(r, http.StatusTooManyRequests, "too many requests without the secret")
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, "too many requests")
			return
		}
		h.rejected(r, http.StatusUnauthorized, "missing or wrong secret: compare the webhooks module's secret with velohunt's webhook.secret")
		writeJSON(w, http.StatusUnauthorized, "missing or wrong secret")
		return
	}
	event := r.PathValue("event")
	switch event {
	case EventCreate, EventUpdate, EventManual:
	default:
		h.rejected(r, http.StatusNotFound, "unknown event in the URL; use create, update or manual")
		writeJSON(w, http.StatusNotFound, "unknown event; use create, update or manual")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.rejected(r, http.StatusRequestEntityTooLarge, "body larger than webhook.max_body_bytes")
			writeJSON(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		h.rejected(r, http.StatusBadRequest, "cannot read the body")
		writeJSON(w, http.StatusBadRequest, "cannot read body")
		return
	}
	iocs, err := iris.ParseWebhookIOCs(body)
	if err != nil {
		h.rejected(r, http.StatusBadRequest, `body is not {"iocs": [...]}: set request_body {"iocs": "iocs"} in the webhooks module`)
		writeJSON(w, http.StatusBadRequest, `body must be {"iocs": [...]} as sent by the webhooks module with request_body {"iocs":"iocs"}`)
		return
	}
	if len(iocs) == 0 {
		if !hasIOCsKey(body) {
			// {"iocs": []} is an event without IOCs; a body without the
			// key is a webhooks module without the body mapping.
			h.rejected(r, http.StatusAccepted, `body has no "iocs" key: set request_body {"iocs": "iocs"} in the webhooks module`)
			writeJSON(w, http.StatusAccepted, `ignored: the body has no "iocs" key (the webhooks module needs request_body {"iocs": "iocs"})`)
			return
		}
		writeJSON(w, http.StatusAccepted, "no IOC in the event")
		return
	}
	if event == EventUpdate && h.OwnUserID != 0 && allByUser(iocs, h.OwnUserID) {
		writeJSON(w, http.StatusAccepted, "ignored: velohunt's own update")
		return
	}
	if err := h.Store.AddInbox(r.Context(), event, body); err != nil {
		h.Logger.Error("store webhook event", "error", err)
		// IRIS does not retry; the reconcile loop will catch the IOC.
		writeJSON(w, http.StatusServiceUnavailable, "cannot store the event now")
		return
	}
	h.Wake()
	h.Logger.Info("webhook event accepted", "event", event, "iocs", len(iocs))
	writeJSON(w, http.StatusAccepted, "queued")
}

// eventLabel is the metrics label of a request's event: the event for
// create, update and manual, and "other" for anything else and for every
// request refused as unauthenticated (401), unknown (404) or over the
// limit (429). A label per path would let anyone add series without end,
// and the path may hold a secret (the fallback <path>/<secret>/<event>;
// <path>/<secret> alone reads as an event).
func eventLabel(event string, status int) string {
	switch status {
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusTooManyRequests:
		return "other"
	}
	switch event {
	case EventCreate, EventUpdate, EventManual:
		return event
	}
	return "other"
}

func allByUser(iocs []ioc.IOC, user int64) bool {
	for _, x := range iocs {
		if x.UserID != user {
			return false
		}
	}
	return true
}

// authorised checks the secret in the headers or, for webhooks modules
// that cannot send headers (before 1.0.8), in the path
// (<path>/<secret>/<event>), compared the same constant-time way.
func (h *Webhook) authorised(r *http.Request) bool {
	if p := r.PathValue("secret"); p != "" {
		return equalSecret(p, h.Secret)
	}
	return Authorised(r, h.Secret)
}

// Authorised reports whether the request carries the secret, as
// "Authorization: Bearer <secret>" or "X-Velohunt-Secret". It compares in
// constant time; both sides are hashed first so that the comparison does
// not depend on the secret's length.
func Authorised(r *http.Request, secret string) bool {
	got := strings.TrimSpace(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	if got == "" {
		got = r.Header.Get("X-Velohunt-Secret")
	}
	return equalSecret(got, secret)
}

// equalSecret compares in constant time; both sides are hashed first so
// that the comparison does not depend on the secret's length.
func equalSecret(got, secret string) bool {
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && secret != ""
}

// statusWriter remembers the status written, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// rejected logs a refused request at warn, at most once a minute per
// answer, so that a misconfigured webhooks module shows in the log without
// a flood filling it. Never the secret, the path (it may hold the secret)
// or the body.
func (h *Webhook) rejected(r *http.Request, status int, reason string) {
	if n, ok := h.rejects.allow(status, time.Now()); ok && h.Logger != nil {
		h.Logger.Warn("webhook request refused", "status", status, "event", eventLabel(r.PathValue("event"), 0),
			"remote", r.RemoteAddr, "reason", reason, "refused_since_last_log", n)
	}
}

// rejectLog rate-limits the log of refused requests per HTTP status.
type rejectLog struct {
	mu     sync.Mutex
	last   map[int]time.Time
	counts map[int]int
}

// allow reports whether to log a refusal now, with the refusals of that
// status not logged since the last log.
func (l *rejectLog) allow(status int, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.counts = map[int]time.Time{}, map[int]int{}
	}
	if t, ok := l.last[status]; ok && now.Sub(t) < time.Minute {
		l.counts[status]++
		return 0, false
	}
	n := l.counts[status]
	l.last[status], l.counts[status] = now, 0
	return n, true
}

// hasIOCsKey reports whether a JSON body has an "iocs" key.
func hasIOCsKey(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	_, ok := m["iocs"]
	return ok
}
