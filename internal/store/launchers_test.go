package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestLaunchHolders(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	open := func() *DB {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	// A lock file left by a launcher that ended before it claimed anything.
	os.Mkdir(launcherDir(path), 0o700)
	stale := filepath.Join(launcherDir(path), "0123456789abcdef0123456789abcdef.lock")
	os.WriteFile(stale, nil, 0o600)

	a, b := open(), open()
	defer b.Close()
	ha := a.holder()
	if !holderID.MatchString(ha) || ha == b.holder() {
		t.Fatalf("holders %q and %q", ha, b.holder())
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("the stale lock file of an ended launcher was kept")
	}
	if b.holderGone(ha) || a.holderGone(ha) {
		t.Fatal("a living launcher was taken for gone")
	}
	for _, bad := range []string{"", "../../../etc/passwd", "0123", ha + "/x"} {
		if b.holderGone(bad) {
			t.Fatalf("holder %q taken for gone", bad)
		}
	}
	a.Close()
	if !b.holderGone(ha) {
		t.Fatal("a closed launcher was not taken for gone")
	}
	if _, err := os.Stat(filepath.Join(launcherDir(path), ha+".lock")); err == nil {
		t.Fatal("the ended launcher's lock file was kept")
	}
	if fi, err := os.Stat(launcherDir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("launchers folder: %v %v", fi, err)
	}
}
