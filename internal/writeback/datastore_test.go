package writeback_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris/iristest"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
	"github.com/velohunt/velohunt/internal/writeback"
)

// fakeFiles serves one flow's upload; reads counts the bytes read.
type fakeFiles struct {
	path    string
	content []byte
	reads   atomic.Int64
}

func (f *fakeFiles) FlowUploads(ctx context.Context, org, clientID, flowID string) ([]velociraptor.Upload, error) {
	return []velociraptor.Upload{{ClientPath: f.path, Components: []string{"clients", clientID, "collections", flowID, "uploads", "auto", "x"},
		Size: int64(len(f.content))}}, nil
}

func (f *fakeFiles) ReadUpload(ctx context.Context, org string, u velociraptor.Upload, limit int64, w io.Writer) (int64, error) {
	if int64(len(f.content)) > limit {
		return 0, ioc.Errorf(ioc.EINVALID, "more than %d bytes stored", limit)
	}
	f.reads.Add(int64(len(f.content)))
	n, err := w.Write(f.content)
	return int64(n), err
}

// datastoreEnv is a case with one collected file (content, as the
// client reported it: reported) and copies on up to max bytes.
func datastoreEnv(t *testing.T, content []byte, reported string, max int64) (*env, *fakeFiles) {
	t.Helper()
	e := setup(t, 2)
	path := `C:\Users\bob\evil <img src=x onerror=alert(1)>.exe`
	f := &fakeFiles{path: path, content: content}
	e.w.DatastoreMaxBytes, e.w.Files = max, map[string]writeback.Files{"main": f}
	e.collectedHits(t, path, store.CollectionResult{State: store.CollectDone, FilePath: path, FileSize: int64(len(content)), SHA256: reported,
		MD5: "098f6bcd4621d373cade4e832627b4f6"})
	return e, f
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A collected file within the cap is copied once into the case's
// datastore (folder velohunt, password-protected, neither an IOC nor an
// evidence), though half IRIS's answers are lost, and the evidence says
// where the copy is.
func TestDatastoreCopy(t *testing.T) {
	content := []byte("MZ\x90\x00 evil bytes")
	e, files := datastoreEnv(t, content, sum(content), 1<<20)
	e.w.Now, e.db.Now = time.Now, time.Now
	e.w.Settle = 100 * time.Millisecond
	e.srv.SetFaults(iristest.Faults{AfterRate: 0.5})
	e.drainReal(t, time.Minute)
	e.srv.SetFaults(iristest.Faults{})
	ds := e.srv.DatastoreFiles(e.cid)
	if len(ds) != 1 {
		t.Fatalf("%d datastore files, want 1: %+v", len(ds), ds)
	}
	f := ds[0]
	if !bytes.Equal(f.Content, content) || f.Password != writeback.DatastorePassword || f.IsIOC != nil || f.IsEvidence != nil ||
		strings.Contains(f.Name, "<") || !strings.Contains(f.Name, "evil") || !strings.HasPrefix(f.Tags, "velohunt,vh-") {
		t.Fatalf("datastore file %+v", f)
	}
	tree, err := e.admin.ListDatastore(context.Background(), e.cid)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := tree.Folder(writeback.DatastoreFolder); !ok || f.Parent != id {
		t.Fatalf("file in folder %d, want the %s folder (%d, %v)", f.Parent, writeback.DatastoreFolder, id, ok)
	}
	list, _ := e.admin.ListEvidences(context.Background(), e.cid)
	if len(list) != 1 || !strings.Contains(list[0].Description, "A copy is in IRIS's datastore: folder velohunt") {
		t.Fatalf("evidences %+v", list)
	}
	if files.reads.Load() == 0 {
		t.Fatal("the file was not read from Velociraptor")
	}
}

// A file over the cap is not read nor copied; the evidence says why.
func TestDatastoreCopyOverCap(t *testing.T) {
	content := bytes.Repeat([]byte("A"), 2048)
	e, files := datastoreEnv(t, content, sum(content), 1000)
	e.drain(t, 30*time.Second)
	if ds := e.srv.DatastoreFiles(e.cid); len(ds) != 0 || files.reads.Load() != 0 {
		t.Fatalf("datastore %+v, %d bytes read", ds, files.reads.Load())
	}
	list, _ := e.admin.ListEvidences(context.Background(), e.cid)
	if len(list) != 1 || !strings.Contains(list[0].Description, "No copy in IRIS's datastore: 2048 bytes, over collect.iris_datastore_max_bytes (1000)") {
		t.Fatalf("evidences %+v", list)
	}
}

// Bytes whose SHA-256 is not the one the client reported are not stored;
// the evidence says so with both hashes.
func TestDatastoreCopyHashMismatch(t *testing.T) {
	content := []byte("what Velociraptor gives back")
	e, _ := datastoreEnv(t, content, sha, 1<<20)
	e.drain(t, 30*time.Second)
	if ds := e.srv.DatastoreFiles(e.cid); len(ds) != 0 {
		t.Fatalf("datastore %+v", ds)
	}
	list, _ := e.admin.ListEvidences(context.Background(), e.cid)
	if len(list) != 1 || !strings.Contains(list[0].Description, "are not what the client reported") ||
		!strings.Contains(list[0].Description, sum(content)) || !strings.Contains(list[0].Description, sha) {
		t.Fatalf("evidences %+v", list)
	}
}

// Off (the default): nothing is read or copied, and the description says
// nothing of a copy.
func TestDatastoreCopyOff(t *testing.T) {
	content := []byte("MZ")
	e, files := datastoreEnv(t, content, sum(content), 0)
	e.drain(t, 30*time.Second)
	list, _ := e.admin.ListEvidences(context.Background(), e.cid)
	if ds := e.srv.DatastoreFiles(e.cid); len(ds) != 0 || files.reads.Load() != 0 || len(list) != 1 || strings.Contains(list[0].Description, "datastore") {
		t.Fatalf("datastore %+v, evidences %+v", ds, list)
	}
}
