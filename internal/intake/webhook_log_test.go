package intake_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/intake"
	"github.com/velohunt/velohunt/internal/testlog"
)

// TestWebhookLogsRefusals: each refused request is logged at warn, at
// most once a minute per answer, without the secret or the body; an
// accepted event is logged at info with its kind and IOC count; a body
// without "iocs" is answered differently from an empty list.
func TestWebhookLogsRefusals(t *testing.T) {
	e := setup(t)
	var logs testlog.Buffer
	const secret = "0123456789abcdef-secret"
	h := &intake.Webhook{Store: e.db, Secret: secret, MaxBody: 2048, Wake: func() {},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	mux := http.NewServeMux()
	mux.Handle("POST /iris/webhook/{event}", h)
	mux.Handle("POST /iris/webhook/{secret}/{event}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	post := func(path, auth, body string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/iris/webhook/"+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const hidden = "body-secret-marker"
	for _, tc := range []struct {
		name, path, auth, body string
		status                 int
		log                    string
	}{
		{"WrongSecret", "create", "wrong-secret-value", `{"iocs":[]}`, 401, "level=WARN msg=\"webhook request refused\" status=401 event=create"},
		{"WrongSecretInPath", "wrong-path-secret/create", "", `{"iocs":[]}`, 401, ""}, // within the minute: counted, not logged
		{"BadBody", "create", secret, hidden, 400, "status=400 event=create"},
		{"TooLarge", "update", secret, `{"iocs":[],"pad":"` + hidden + strings.Repeat("a", 4096) + `"}`, 413, "status=413 event=update"},
		{"NoIOCsKey", "create", secret, `{"` + hidden + `":1}`, 202, `status=202 event=create remote=`},
		{"Accepted", "create", secret, `{"iocs":[{"ioc_id":5,"ioc_value":"x","ioc_type_id":20,"user_id":1},{"ioc_id":6,"ioc_value":"y","ioc_type_id":20,"user_id":1}]}`,
			202, `level=INFO msg="webhook event accepted" event=create iocs=2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(logs.String())
			if code, _ := post(tc.path, tc.auth, tc.body); code != tc.status {
				t.Fatalf("status %d, want %d", code, tc.status)
			}
			got := logs.String()[before:]
			if tc.log == "" && got != "" {
				t.Fatalf("logged again within the minute: %s", got)
			}
			if !strings.Contains(got, tc.log) {
				t.Fatalf("log %q lacks %q", got, tc.log)
			}
		})
	}
	for _, s := range []string{secret, "wrong-secret-value", "wrong-path-secret", hidden} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("the log holds %q:\n%s", s, logs.String())
		}
	}
	_, empty := post("create", secret, `{"iocs":[]}`)
	_, none := post("create", secret, `{}`)
	if empty == none {
		t.Fatalf(`{"iocs":[]} and {} get the same answer: %s`, empty)
	}
}
