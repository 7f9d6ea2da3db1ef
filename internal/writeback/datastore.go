package writeback

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	"github.com/velohunt/velohunt/internal/iris"
	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/store"
	"github.com/velohunt/velohunt/internal/velociraptor"
)

// Files reads collected files back from one Velociraptor server.
type Files interface {
	FlowUploads(ctx context.Context, org, clientID, flowID string) ([]velociraptor.Upload, error)
	// ReadUpload copies an upload to w, failing (EINVALID) beyond limit
	// bytes.
	ReadUpload(ctx context.Context, org string, u velociraptor.Upload, limit int64, w io.Writer) (int64, error)
}

// DatastoreFolder is the folder, under a case's datastore root, that
// holds velohunt's copies of collected files.
const DatastoreFolder = "velohunt"

// DatastorePassword protects each copy: IRIS stores it in a zip encrypted
// with it, as it does for IOC files (the password IRIS uses for those).
const DatastorePassword = "infected"

// datastoreRetry is how long after its collection ended a copy whose
// bytes Velociraptor could not give (server down) is tried again before
// the evidence is written without it.
const datastoreRetry = time.Hour

// datastoreCopy stores a copy of a collected file in the case's IRIS
// datastore, when the option is on, and returns what the evidence
// description says of it ("" when the option is off). A copy is made
// once: a retry finds it by the collection's marker in its tags. Only
// bytes whose SHA-256 is the client's are stored, and never more than
// DatastoreMaxBytes are held. Failures that will not pass are said in the
// sentence, not returned: the evidence is written without the copy.
func (w *Writer) datastoreCopy(ctx context.Context, c collection, wr store.Write) (string, error) {
	col := c.col
	if w.DatastoreMaxBytes <= 0 || col.Path == "" {
		return "", nil
	}
	if col.FileSize > w.DatastoreMaxBytes {
		return fmt.Sprintf("No copy in IRIS's datastore: %d bytes, over collect.iris_datastore_max_bytes (%d).", col.FileSize, w.DatastoreMaxBytes), nil
	}
	unlock := w.locks.lock(fmt.Sprintf("datastore:%d", wr.CaseID))
	defer unlock()
	ds, err := w.api().ListDatastore(ctx, wr.CaseID)
	if err != nil {
		return "", err
	}
	// The copy an earlier attempt made: its marker, and the collected
	// bytes (a file another user of the case planted or swapped in with
	// the marker, which velohunt's copy shows, is not taken for it).
	for _, f := range ds.Files {
		if slices.Contains(strings.Split(f.Tags, ","), wr.Marker) && f.SHA256 == col.SHA256 && f.Size == col.FileSize {
			return copied(f), nil
		}
	}
	content, why, err := w.readCollected(ctx, c)
	if err != nil || why != "" {
		return why, err
	}
	folder, ok := ds.Folder(DatastoreFolder)
	if !ok {
		if folder, err = w.api().AddDatastoreFolder(ctx, wr.CaseID, ds.Root, DatastoreFolder); err != nil {
			return "", err
		}
	}
	f, err := w.api().AddDatastoreFile(ctx, wr.CaseID, folder, iris.NewDatastoreFile{Name: render.EvidenceFilename(c.view),
		Description: fmt.Sprintf("Copy of the file velohunt collected with Velociraptor (server %s, client %s, flow %s) for IRIS IOC #%d; "+
			"SHA-256 %s, checked against the client's; velohunt marker %s", render.Token(col.Server), render.Token(col.ClientID),
			render.Token(col.FlowID), c.hit.IOC.IRISID, render.Token(col.SHA256), wr.Marker),
		Tags: "velohunt," + wr.Marker, Password: DatastorePassword, Content: bytes.NewReader(content)})
	var se *iris.StatusError
	switch {
	case err == nil:
		return copied(f), nil
	case iris.IsRetryable(err) || !errors.As(err, &se):
		return "", err
	}
	w.Logger.Warn("IRIS refused the datastore copy of a collected file", "case_id", wr.CaseID, "flow_id", col.FlowID, "error", err)
	return fmt.Sprintf("No copy in IRIS's datastore: IRIS refused it (HTTP %d, in velohunt's log).", se.Status), nil
}

func copied(f iris.DatastoreFile) string {
	return fmt.Sprintf("A copy is in IRIS's datastore: folder %s, file #%d, in a zip with the password `%s` "+
		"(its SHA-256 checked against the client's before it was stored).", DatastoreFolder, f.ID, DatastorePassword)
}

// readCollected reads a collected file from its Velociraptor server, no
// more than the size the client reported, and checks its SHA-256 against the
// client's. why says why there are no bytes to store; a server that
// cannot be reached holds the write (for datastoreRetry after the
// collection ended).
func (w *Writer) readCollected(ctx context.Context, c collection) (content []byte, why string, err error) {
	col := c.col
	files, ok := w.Files[col.Server]
	if !ok {
		return nil, fmt.Sprintf("No copy in IRIS's datastore: server %s is not configured.", render.Token(col.Server)), nil
	}
	defer func() {
		if err != nil && ioc.ErrorCode(err) == ioc.EUNAVAILABLE && w.Now().Sub(col.Ended) < datastoreRetry {
			w.Logger.Warn("collected file not read from Velociraptor; retried", "flow_id", col.FlowID, "error", err)
			err = &heldError{until: w.Now().Add(time.Minute)}
			return
		}
		if err != nil {
			w.Logger.Warn("collected file not read from Velociraptor: no datastore copy", "flow_id", col.FlowID, "error", err)
			why = fmt.Sprintf("No copy in IRIS's datastore: Velociraptor did not give the file back (%s, in velohunt's log).", ioc.ErrorCode(err))
			content, err = nil, nil
		}
	}()
	ups, err := files.FlowUploads(ctx, col.Org, col.ClientID, col.FlowID)
	if err != nil {
		return nil, "", err
	}
	i := slices.IndexFunc(ups, func(u velociraptor.Upload) bool { return u.ClientPath == col.FilePath })
	if i < 0 {
		return nil, "", ioc.Errorf(ioc.ENOTFOUND, "flow %s has no upload of the collected path", col.FlowID)
	}
	// One copy is read at a time: the writer's requests in flight could
	// otherwise each hold up to the cap. The read stops past the size the
	// client reported (at most the cap).
	defer w.locks.lock("datastore-read")()
	var buf bytes.Buffer
	buf.Grow(int(col.FileSize))
	h := sha256.New()
	n, err := files.ReadUpload(ctx, col.Org, ups[i], col.FileSize, io.MultiWriter(&buf, h))
	if err != nil {
		return nil, "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != col.SHA256 || n != col.FileSize {
		w.Logger.Warn("collected file read back differs from the client's: no datastore copy", "flow_id", col.FlowID,
			"sha256", got, "client_sha256", col.SHA256, "bytes", n, "client_bytes", col.FileSize)
		return nil, fmt.Sprintf("No copy in IRIS's datastore: the bytes read back from Velociraptor (%d, SHA-256 %s) are not "+
			"what the client reported (%d, SHA-256 %s).", n, got, col.FileSize, render.Token(col.SHA256)), nil
	}
	return buf.Bytes(), "", nil
}
