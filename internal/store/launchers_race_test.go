package store

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLauncherStartRace: launchers starting at once never take one
// another's lock file for a dead launcher's (an adversary review proved it
// when the file was locked after it was made under its final name; it is
// now locked under a temporary name, then renamed).
func TestLauncherStartRace(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 200; round++ {
		path := filepath.Join(t.TempDir(), "v.db")
		const n = 8
		dbs := make([]*DB, n)
		for i := range dbs {
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			dbs[i] = db
		}
		var wg sync.WaitGroup
		for _, db := range dbs {
			wg.Add(1)
			go func() { defer wg.Done(); db.holder() }()
		}
		wg.Wait()
		for i, db := range dbs {
			id := db.holder()
			if id == "" {
				continue
			}
			if dbs[(i+1)%n].holderGone(id) {
				for _, d := range dbs {
					d.Close()
				}
				t.Fatalf("round %d: launcher %d lives (flock held) but another takes it for gone: its lock file was removed before it locked it", round, i)
			}
		}
		for _, d := range dbs {
			d.Close()
		}
	}
}

// TestLaunchersFolderOfOthersNotTrusted: a launchers folder open to
// others (made by someone else first, in a shared directory) is not used:
// claims are anonymous (their lease alone ends them) and no lock file in it
// is taken for a dead launcher's.
func TestLaunchersFolderOfOthersNotTrusted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	if err := os.Mkdir(launcherDir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(launcherDir(path), 0o777)
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if id := a.holder(); id != "" {
		t.Fatalf("holder %q made in a world-writable folder", id)
	}
	if a.holderGone("0123456789abcdef0123456789abcdef") {
		t.Fatal("a missing lock file in a world-writable folder was taken for a dead launcher")
	}
}
