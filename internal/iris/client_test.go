package iris_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
)

// MustStart starts a simulated IRIS and a client with the service user's key.
func MustStart(tb testing.TB) (*iristest.Server, *iris.Client) {
	tb.Helper()
	srv := iristest.Start()
	tb.Cleanup(srv.Close)
	return srv, MustClient(tb, srv, "velohunt-key")
}

func MustClient(tb testing.TB, srv *iristest.Server, key string) *iris.Client {
	tb.Helper()
	c, err := iris.New(iris.Options{URL: srv.URL(), APIKey: key, Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestCasesAndIOCs(t *testing.T) {
	ctx := context.Background()
	srv, c := MustStart(t)
	admin := MustClient(t, srv, "admin-key")
	if v, err := c.Versions(ctx); err != nil || v != "v2.4.20" {
		t.Fatalf("Versions=%q err=%v", v, err)
	}
	if id, err := c.WhoAmI(ctx); err != nil || id != 2 {
		t.Fatalf("WhoAmI=%d err=%v", id, err)
	}
	types, err := c.IOCTypes(ctx)
	if err != nil || len(types) != 160 || types[89].Name != "md5" || types[89].ID != 90 {
		t.Fatalf("IOCTypes: %d types, err=%v", len(types), err)
	}
	cid, err := admin.AddCase(ctx, "ransomware", "test case", 1, "lab,ransom")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Case(ctx, cid)
	if err != nil || !cs.Open || len(cs.Tags) != 2 || cs.Customer != "IrisInitialClient" {
		t.Fatalf("Case=%+v err=%v", cs, err)
	}
	st0, _ := c.IOCState(ctx, cid)
	added, err := c.AddIOC(ctx, cid, iris.NewIOC{Value: "d41d8cd98f00b204e9800998ecf8427e", TypeID: 90, TLPID: 2})
	if err != nil || added.ID == 0 || added.TypeName != "md5" {
		t.Fatalf("AddIOC=%+v err=%v", added, err)
	}
	t.Run("DuplicateIs200WithExistingRow", func(t *testing.T) {
		again, err := c.AddIOC(ctx, cid, iris.NewIOC{Value: "d41d8cd98f00b204e9800998ecf8427e", TypeID: 90, TLPID: 1})
		if err != nil || again.ID != added.ID {
			t.Fatalf("again=%+v err=%v", again, err)
		}
	})
	if st1, _ := c.IOCState(ctx, cid); st1 <= st0 {
		t.Fatalf("ioc state did not move: %d -> %d", st0, st1)
	}
	list, err := c.ListIOCs(ctx, cid)
	if err != nil || len(list) != 1 || list[0].TypeName != "md5" || list[0].ID != added.ID {
		t.Fatalf("ListIOCs=%+v err=%v", list, err)
	}
	one, err := c.IOC(ctx, cid, added.ID)
	if err != nil || one.TypeName != "md5" || one.UserID != 2 {
		t.Fatalf("IOC=%+v err=%v", one, err)
	}
	t.Run("ErrIOCOfOtherCase", func(t *testing.T) {
		_, err := c.IOC(ctx, 1, added.ID)
		if ioc.ErrorCode(err) != ioc.EINVALID || iris.IsRetryable(err) {
			t.Fatalf("err=%v, want permanent EINVALID (IRIS answers 400)", err)
		}
	})
	t.Run("ErrUnknownCaseIs403", func(t *testing.T) {
		_, err := c.ListIOCs(ctx, 9999)
		var se *iris.StatusError
		if !errors.As(err, &se) || se.Status != 403 || ioc.ErrorCode(err) != ioc.EPERMISSION {
			t.Fatalf("err=%v, want 403", err)
		}
	})
	cases, err := c.ListCases(ctx)
	if err != nil || len(cases) != 2 {
		t.Fatalf("ListCases=%+v err=%v", cases, err)
	}
	if err := admin.CloseCase(ctx, cid); err != nil {
		t.Fatal(err)
	}
	cases, _ = c.ListCases(ctx)
	for _, cs := range cases {
		if cs.ID == cid && cs.Open {
			t.Fatal("closed case listed as open")
		}
	}
}

func TestClassification(t *testing.T) {
	srv, c := MustStart(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		faults    iristest.Faults
		retryable bool
		code      string
	}{
		{"500", iristest.Faults{Rate: 1, Statuses: []int{500}}, true, ioc.EUNAVAILABLE},
		{"502", iristest.Faults{Rate: 1, Statuses: []int{502}}, true, ioc.EUNAVAILABLE},
		{"429", iristest.Faults{Rate: 1, Statuses: []int{429}}, true, ioc.EUNAVAILABLE},
		{"501", iristest.Faults{Rate: 1, Statuses: []int{501}}, false, ioc.EINVALID},
		{"Dropped", iristest.Faults{Rate: 1, Statuses: []int{0}}, true, ioc.EUNAVAILABLE},
		{"Down", iristest.Faults{Down: true}, true, ioc.EUNAVAILABLE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.SetFaults(tt.faults)
			defer srv.SetFaults(iristest.Faults{})
			_, err := c.Versions(ctx)
			if err == nil || iris.IsRetryable(err) != tt.retryable || ioc.ErrorCode(err) != tt.code {
				t.Fatalf("err=%v retryable=%v code=%q, want %v %q", err, iris.IsRetryable(err), ioc.ErrorCode(err), tt.retryable, tt.code)
			}
		})
	}
	t.Run("RetryAfter", func(t *testing.T) {
		srv.SetFaults(iristest.Faults{Rate: 1, Statuses: []int{429}})
		defer srv.SetFaults(iristest.Faults{})
		_, err := c.Versions(ctx)
		if got := iris.RetryAfter(err); got != time.Second {
			t.Fatalf("RetryAfter=%v, want 1s", got)
		}
	})
	t.Run("401IsPermanent", func(t *testing.T) {
		bad := MustClient(t, srv, "wrong-key")
		_, err := bad.Versions(ctx)
		var se *iris.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Retryable {
			t.Fatalf("err=%v", err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		slow := iristest.Start()
		defer slow.Close()
		cl, _ := iris.New(iris.Options{URL: "http://127.0.0.1:1", APIKey: "k", Timeout: time.Second})
		_, err := cl.Versions(ctx)
		if !iris.IsRetryable(err) {
			t.Fatalf("err=%v, want retryable", err)
		}
	})
}

// TestErrorsLeakNoSecret checks that no failure mode puts the API key into
// an error message.
func TestErrorsLeakNoSecret(t *testing.T) {
	const secret = "s3cr3t-api-key-0123456789abcdef"
	srv := iristest.Start()
	defer srv.Close()
	ctx := context.Background()
	for _, f := range []iristest.Faults{{}, {Rate: 1, Statuses: []int{500}}, {Rate: 1, Statuses: []int{0}}, {Down: true}} {
		srv.SetFaults(f)
		for _, url := range []string{srv.URL(), "http://user:pw@127.0.0.1:1", srv.URL() + "/nope"} {
			c, err := iris.New(iris.Options{URL: url, APIKey: secret, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListIOCs(ctx, 1)
			if err == nil {
				t.Fatalf("want an error for %s", url)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		}
	}
}

// TestDuplicateAssetExactReply feeds the exact reply of a real IRIS 2.4.20
// to a duplicate asset (reason in data, as a list) and a field validation
// error (reasons in data, as an object).
func TestDuplicateAssetExactReply(t *testing.T) {
	reply := `{"status":"error","message":"Data error","data":["Asset name already exists in this case"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, reply)
	}))
	defer srv.Close()
	c, err := iris.New(iris.Options{URL: srv.URL, APIKey: "k", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AddAsset(context.Background(), 3, iris.NewAsset{Name: "WS-01", TypeID: 9, AnalysisStatusID: 1})
	if !errors.Is(err, iris.ErrDuplicateAsset) || iris.IsRetryable(err) {
		t.Fatalf("err=%v, want ErrDuplicateAsset", err)
	}
	reply = `{"status":"error","message":"Data error","data":{"asset_type_id":["Invalid asset type ID"]}}`
	_, err = c.AddAsset(context.Background(), 3, iris.NewAsset{Name: "WS-01", TypeID: 999, AnalysisStatusID: 1})
	if errors.Is(err, iris.ErrDuplicateAsset) || err == nil || !strings.Contains(err.Error(), "Invalid asset type ID") {
		t.Fatalf("err=%v, want the field's reason", err)
	}
}
