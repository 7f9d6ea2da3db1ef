package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/velohunt/velohunt/internal/intake"
	"github.com/velohunt/velohunt/internal/ioc"
)

// serveReady answers 200 when the store answers and IRIS and every
// Velociraptor server were reachable in the last five minutes (asking them
// now when they were not), else 503 with what is wrong.
func (a *App) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	problems := map[string]string{}
	if err := a.storeProblem(ctx); err != nil {
		problems["store"] = err.Error()
	}
	window := a.ReadyWindow
	if window == 0 {
		window = 5 * time.Minute
	}
	recent := func(peer string) bool { return time.Since(a.Metrics.LastOK(peer)) < window }
	if !recent("iris") {
		if _, err := a.IRIS.Versions(ctx); err != nil {
			problems["iris"] = ioc.ErrorMessage(err)
		}
	}
	for name, cl := range a.VR {
		if !recent("velociraptor:" + name) {
			if _, err := cl.Version(ctx, ""); err != nil {
				problems["velociraptor:"+name] = ioc.ErrorMessage(err)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"ready": false, "problems": problems})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": true})
}

// serveStatus serves the status picture to callers that present the
// webhook secret: it names IOC values and cases.
func (a *App) serveStatus(w http.ResponseWriter, r *http.Request) {
	if !intake.Authorised(r, a.Config.Webhook.Secret.Reveal()) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "the webhook secret is required", http.StatusUnauthorized)
		return
	}
	st, err := collectStatus(r.Context(), a.Store)
	if err != nil {
		http.Error(w, "status unavailable", http.StatusServiceUnavailable)
		return
	}
	limit, inflight := a.Writer.ConcurrencyInUse()
	st.Outbox.Concurrency, st.Outbox.InFlight = &limit, &inflight
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}
