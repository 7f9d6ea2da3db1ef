package iris_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
)

// TestTLSVerification checks that IRIS's certificate is verified by
// default, that a CA file makes a private CA trusted, and that a
// certificate error is permanent (an operator must act), not retried.
func TestTLSVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"success","message":"","data":{"iris_current":"v2.4.20"}}`))
	}))
	defer srv.Close()
	ctx := context.Background()

	t.Run("ErrUnknownCA", func(t *testing.T) {
		c, _ := iris.New(iris.Options{URL: srv.URL, APIKey: "k", Timeout: 5 * time.Second})
		_, err := c.Versions(ctx)
		if err == nil || iris.IsRetryable(err) || ioc.ErrorCode(err) != ioc.EPERMISSION {
			t.Fatalf("err=%v retryable=%v, want a permanent certificate error", err, iris.IsRetryable(err))
		}
	})
	t.Run("CAFile", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := iris.New(iris.Options{URL: srv.URL, APIKey: "k", CAFile: ca, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := c.Versions(ctx); err != nil || v != "v2.4.20" {
			t.Fatalf("Versions=%q err=%v", v, err)
		}
	})
	t.Run("ErrBadCAFile", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.pem")
		os.WriteFile(bad, []byte("not a certificate"), 0o644)
		if _, err := iris.New(iris.Options{URL: srv.URL, APIKey: "k", CAFile: bad}); err == nil {
			t.Fatal("want an error for a CA file without certificates")
		}
	})
}
