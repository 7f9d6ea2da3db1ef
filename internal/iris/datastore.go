package iris

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"strconv"
	"strings"
)

// Datastore is a case's datastore as IRIS lists it: its folders and files.
type Datastore struct {
	// Root is the id of the case's root folder ("Case N"), the parent of
	// new top-level folders.
	Root    int64
	Folders []DatastoreFolder
	Files   []DatastoreFile
}

// DatastoreFolder is a folder of a case's datastore.
type DatastoreFolder struct {
	ID, Parent int64
	Name       string
}

// DatastoreFile is a file of a case's datastore.
type DatastoreFile struct {
	ID, Folder  int64
	Name        string
	Description string
	Tags        string
	SHA256      string // lower-case hex (IRIS stores it upper-case)
	Size        int64
	// Password is set when IRIS stores the file in a zip encrypted with
	// it (IRIS 2.4.20 returns it in clear to every reader of the case).
	Password string
	IsIOC    bool
	Evidence bool
}

// Folder returns the id of the folder of that name right under the root,
// and whether there is one.
func (d Datastore) Folder(name string) (int64, bool) {
	for _, f := range d.Folders {
		if f.Parent == d.Root && f.Name == name {
			return f.ID, true
		}
	}
	return 0, false
}

// dsNode is a node of IRIS's tree: a folder ("directory", children keyed
// "d-<id>" and "f-<id>") or a file (the whole row).
type dsNode struct {
	Type        string            `json:"type"`
	Name        string            `json:"name"`
	IsRoot      bool              `json:"is_root"`
	Children    map[string]dsNode `json:"children"`
	FileID      flexInt           `json:"file_id"`
	Parent      flexInt           `json:"file_parent_id"`
	Original    string            `json:"file_original_name"`
	Description string            `json:"file_description"`
	Tags        string            `json:"file_tags"`
	SHA256      string            `json:"file_sha256"`
	Size        flexInt           `json:"file_size"`
	Password    string            `json:"file_password"`
	IsIOC       *bool             `json:"file_is_ioc"`
	IsEvidence  *bool             `json:"file_is_evidence"`
}

// ListDatastore reads a case's datastore tree (GET /datastore/list/tree;
// read access to the case). IRIS makes the tree (root "Case N" and its
// folders Evidences, IOCs and Images) on first use.
func (c *Client) ListDatastore(ctx context.Context, cid int64) (Datastore, error) {
	var tree map[string]dsNode
	if err := c.do(ctx, "GET", "/datastore/list/tree", cid, nil, &tree); err != nil {
		return Datastore{}, err
	}
	var d Datastore
	for key, n := range tree {
		id, ok := nodeID(key, "d-")
		if !ok || !n.IsRoot {
			continue
		}
		d.Root = id
		d.walk(id, n.Children)
	}
	if d.Root == 0 {
		return d, fmt.Errorf("iris list datastore of case %d: no root folder in the reply", cid)
	}
	return d, nil
}

func (d *Datastore) walk(parent int64, children map[string]dsNode) {
	for key, n := range children {
		if id, ok := nodeID(key, "d-"); ok {
			d.Folders = append(d.Folders, DatastoreFolder{ID: id, Parent: parent, Name: n.Name})
			d.walk(id, n.Children)
			continue
		}
		if id, ok := nodeID(key, "f-"); ok {
			d.Files = append(d.Files, DatastoreFile{ID: id, Folder: parent, Name: n.Original, Description: n.Description,
				Tags: n.Tags, SHA256: strings.ToLower(n.SHA256), Size: int64(n.Size), Password: n.Password,
				IsIOC: n.IsIOC != nil && *n.IsIOC, Evidence: n.IsEvidence != nil && *n.IsEvidence})
		}
	}
}

func nodeID(key, prefix string) (int64, bool) {
	s, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// AddDatastoreFolder adds a folder under parent and returns its id
// (POST /datastore/folder/add; full access to the case).
func (c *Client) AddDatastoreFolder(ctx context.Context, cid, parent int64, name string) (int64, error) {
	var r struct {
		ID flexInt `json:"path_id"`
	}
	if err := c.do(ctx, "POST", "/datastore/folder/add", cid, map[string]any{"parent_node": parent, "folder_name": name}, &r); err != nil {
		return 0, err
	}
	return int64(r.ID), nil
}

// NewDatastoreFile is a file to store in a case's datastore.
type NewDatastoreFile struct {
	Name        string // shown by IRIS as the file's name
	Description string
	Tags        string // comma separated
	// Password, when set, makes IRIS store the file in a zip encrypted
	// with it (as it does for IOC files), the file named by its SHA-256
	// inside; downloads are that zip.
	Password string
	Content  io.Reader
}

// AddDatastoreFile stores a file in a folder of a case's datastore
// (POST /datastore/file/add/<folder>, multipart; full access to the
// case). It is neither an IOC nor an evidence of the case: IRIS would make
// an IOC of its hash, or an evidence record, for those. The content is
// streamed, not copied.
func (c *Client) AddDatastoreFile(ctx context.Context, cid, folder int64, f NewDatastoreFile) (DatastoreFile, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeDatastoreForm(mw, f))
	}()
	var r dsNode
	err := c.send(ctx, "POST", "/datastore/file/add/"+strconv.FormatInt(folder, 10), cid, mw.FormDataContentType(), pr, &r)
	pr.CloseWithError(io.ErrClosedPipe) // ends the writer if the request stopped reading
	if err != nil {
		return DatastoreFile{}, err
	}
	return DatastoreFile{ID: int64(r.FileID), Folder: int64(r.Parent), Name: r.Original, Description: r.Description, Tags: r.Tags,
		SHA256: strings.ToLower(r.SHA256), Size: int64(r.Size), Password: r.Password,
		IsIOC: r.IsIOC != nil && *r.IsIOC, Evidence: r.IsEvidence != nil && *r.IsEvidence}, nil
}

// writeDatastoreForm writes the form of a datastore file. IRIS 2.4.20
// fails (500) on a file part without a file name: the part's name is a
// fixed one, never the endpoint's.
func writeDatastoreForm(mw *multipart.Writer, f NewDatastoreFile) error {
	for _, kv := range [][2]string{{"file_original_name", f.Name}, {"file_description", f.Description}, {"file_tags", f.Tags},
		{"file_password", f.Password}} {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return err
		}
	}
	part, err := mw.CreateFormFile("file_content", "velohunt-copy.bin")
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, f.Content); err != nil {
		return err
	}
	return mw.Close()
}
