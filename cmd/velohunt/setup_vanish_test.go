package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/velohunt/velohunt/internal/config"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/velociraptor/velotest"
)

// TestSetupSkipsVanishedIOC: setup reads every IOC of every open case
// before it pushes the tab; an IOC that an IRIS user deletes or unlinks
// meanwhile (IRIS 2.4.20 then answers 400 "Invalid IOC ID for this case",
// as the simulator) is skipped, and setup still adds the tab. Found by an
// adversary review: one vanished IOC aborted setup.
func TestSetupSkipsVanishedIOC(t *testing.T) {
	ctx := context.Background()
	srv := iristest.Start()
	defer srv.Close()
	vr, err := velotest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer vr.Close()
	dir := t.TempDir()
	apiPath, err := vr.WriteAPIConfig(dir, "velohunt")
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := iris.New(iris.Options{URL: srv.URL(), APIKey: "admin-key"})
	cid, err := admin.AddCase(ctx, "hostile user's case", "an IRIS user's case", 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := admin.AddIOC(ctx, cid, iris.NewIOC{Value: fmt.Sprintf("f%d.exe", i), TypeID: iristest.TypeID("filename"), TLPID: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// The hostile user's delete lands between setup's IOC list and its
	// read of one IOC.
	target, _ := url.Parse(srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	one := regexp.MustCompile(`^/case/ioc/(\d+)$`)
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := one.FindStringSubmatch(r.URL.Path); m != nil && r.Method == "GET" {
			once.Do(func() {
				var id int64
				fmt.Sscan(m[1], &id)
				req, _ := http.NewRequest("POST", fmt.Sprintf("%s/case/ioc/delete/%d?cid=%d", srv.URL(), id, cid), nil)
				req.Header.Set("Authorization", "Bearer admin-key")
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			})
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	body := fmt.Sprintf("database: %q\nlisten: \"127.0.0.1:0\"\niris:\n  url: %q\n  api_key: velohunt-key\nwebhook:\n  secret: %q\nvelociraptor:\n  servers:\n    - name: main\n      api_config: %q\n",
		filepath.Join(dir, "v.db"), front.URL, "0123456789abcdef0123", apiPath)
	cfgPath := filepath.Join(dir, "velohunt.yaml")
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvIRISAdminAPIKey, "admin-key")
	code, out := runCmd("setup", "-config", cfgPath)
	t.Logf("setup: code %d\n%s", code, out)
	list, err := admin.AttributeTemplates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	has := false
	for _, tm := range list {
		if tm.For == "ioc" && tm.Content["Velociraptor hunt"] != nil {
			has = true
		}
	}
	if code != 0 || !has {
		t.Errorf("one IOC deleted during setup: exit %d, tab in the IOC template: %v", code, has)
	}
}
