package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/internal/asnobody"
	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/store"
)

// openWithCase opens (creating) the store at path and records one open
// case in it; the caller closes it.
func openWithCase(t *testing.T, path string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertCase(ctx, ioc.Case{ID: 1, Open: true}, ioc.Route{Server: "main"}); err != nil {
		db.Close()
		t.Fatal(err)
	}
	return db
}

// TestOpenCreatesPrivateFiles: the database and its WAL hold IOCs and case
// data: created 0600 whatever the umask, and a wider existing mode is
// warned about.
func TestOpenCreatesPrivateFiles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db := openWithCase(t, path)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", filepath.Base(p), got)
		}
	}
	db.Close()

	t.Run("WarnWider", func(t *testing.T) {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		db, err := store.OpenWith(ctx, path, store.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if !strings.Contains(buf.String(), "readable by other users") || !strings.Contains(buf.String(), "0644") {
			t.Fatalf("no warning about mode 0644: %q", buf.String())
		}
	})
}

// TestOpenMustExist: commands other than serve never create a database.
func TestOpenMustExist(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "typo.db")
	for _, opts := range []store.Options{{MustExist: true}, {ReadOnly: true}} {
		_, err := store.OpenWith(ctx, path, opts)
		if err == nil || !strings.Contains(err.Error(), "database "+path+" does not exist") {
			t.Fatalf("%+v: err=%v", opts, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%+v: %s was created", opts, path)
		}
	}
}

// TestOpenReadOnly: status reads a database without writing it.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db := openWithCase(t, path)
	db.Close()
	ro, err := store.OpenWith(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	st, err := ro.Stats(ctx)
	if err != nil || st.OpenCases != 1 {
		t.Fatalf("stats=%+v err=%v", st, err)
	}
	if err := ro.UpsertCase(ctx, ioc.Case{ID: 2, Open: true}, ioc.Route{Server: "main"}); err == nil {
		t.Fatal("a read-only store accepted a write")
	}
}

// TestOpenRefusesDamaged: a database with overwritten pages is refused at
// a serve's open, with how to restore it.
func TestOpenRefusesDamaged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := db.UpsertCase(ctx, ioc.Case{ID: int64(i + 1), Name: strings.Repeat("x", 200), Open: true}, ioc.Route{Server: "main"}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	junk := bytes.Repeat([]byte{0xA5}, 4096*3)
	if _, err := f.WriteAt(junk, fi.Size()/2/4096*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = store.OpenWith(ctx, path, store.Options{QuickCheck: true})
	var de *store.DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "velohunt backup") {
		t.Fatalf("err=%v, want a damaged-database error naming the backup", err)
	}
}

// TestOpenReadOnlyDirectory: a database that cannot be created in its
// directory names the path and the permission. Root ignores permissions:
// as root the test runs itself again as nobody.
func TestOpenReadOnlyDirectory(t *testing.T) {
	if os.Getuid() == 0 {
		asnobody.Rerun(t, "TestOpenReadOnlyDirectory")
		return
	}
	dir, err := os.MkdirTemp("", "velohunt-ro")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "v.db")
	_, err = store.Open(context.Background(), path)
	want := "cannot create database " + path + ": permission denied on directory " + dir
	if err == nil || err.Error() != want {
		t.Fatalf("err=%v\nwant %s", err, want)
	}
}
