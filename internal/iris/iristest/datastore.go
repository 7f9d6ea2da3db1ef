package iristest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DSFolder is a folder of a simulated case datastore (IRIS's
// DataStorePath).
type DSFolder struct {
	ID, CaseID, Parent int64
	Name               string
	Root               bool
}

// DSFile is a file of a simulated case datastore (IRIS's DataStoreFile).
// Content holds the bytes received; IRIS would keep them in a zip
// encrypted with Password when one is set.
type DSFile struct {
	ID, CaseID, Parent int64
	UUID               string
	Name, Description  string
	Tags, Password     string
	SHA256             string // upper-case hex, as IRIS computes it
	Size               int64
	IsIOC, IsEvidence  *bool // as sent (nil: not sent, null in replies)
	UserID             int64
	Added              time.Time
	Content            []byte
}

// DatastoreFiles returns copies of a case's datastore files, by id.
func (s *Server) DatastoreFiles(cid int64) []DSFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DSFile
	for _, f := range s.dsFiles {
		if f.CaseID == cid {
			c := *f
			c.Content = slices.Clone(f.Content)
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b DSFile) int { return int(a.ID - b.ID) })
	return out
}

// dsRoot returns a case's root folder, making the tree IRIS makes on first
// use (root "Case N"; Evidences, IOCs, Images); s.mu is held.
func (s *Server) dsRoot(cid int64) *DSFolder {
	for _, f := range s.dsFolders {
		if f.CaseID == cid && f.Root {
			return f
		}
	}
	root := &DSFolder{ID: s.id(), CaseID: cid, Name: fmt.Sprintf("Case %d", cid), Root: true}
	s.dsFolders[root.ID] = root
	for _, n := range []string{"Evidences", "IOCs", "Images"} {
		f := &DSFolder{ID: s.id(), CaseID: cid, Parent: root.ID, Name: n}
		s.dsFolders[f.ID] = f
	}
	return root
}

func (s *Server) datastoreRoutes(mux *http.ServeMux) {
	// IRIS 2.4.20 datastore_routes.py: the tree keyed "d-<id>" (folders,
	// the root with is_root) and "f-<id>" (files, every column).
	mux.HandleFunc("GET /datastore/list/tree", s.api("GET /datastore/list/tree", true, func(q *request) {
		root := s.dsRoot(q.cid)
		reply(q.w, 200, true, "", map[string]any{fmt.Sprintf("d-%d", root.ID): map[string]any{"name": root.Name, "type": "directory",
			"is_root": true, "children": s.dsChildren(root.ID)}})
	}))
	mux.HandleFunc("POST /datastore/folder/add", s.api("POST /datastore/folder/add", true, func(q *request) {
		parent, name := toInt(q.body["parent_node"]), str(q.body["folder_name"])
		if parent == 0 || name == "" {
			reply(q.w, 400, false, "Invalid data", nil)
			return
		}
		if p, ok := s.dsFolders[parent]; !ok || p.CaseID != q.cid {
			reply(q.w, 400, false, "Parent node is invalid for this case", nil)
			return
		}
		f := &DSFolder{ID: s.id(), CaseID: q.cid, Parent: parent, Name: name}
		s.dsFolders[f.ID] = f
		reply(q.w, 200, true, "Folder added", map[string]any{"path_id": f.ID, "path_uuid": fmt.Sprintf("path-uuid-%d", f.ID),
			"path_parent_id": f.Parent, "path_case_id": f.CaseID, "path_name": f.Name, "path_is_root": false})
	}))
	// DSFileSchema loads the form partially: file_original_name is
	// required; a file_is_ioc file gets the password "infected" when none
	// is given; the hash and size are the received file's, the hash
	// upper-case. A file part without a file name makes ds_store_file
	// return None, which IRIS fails to unpack (500).
	mux.HandleFunc("POST /datastore/file/add/{node}", s.api("POST /datastore/file/add", true, func(q *request) {
		node, _ := strconv.ParseInt(q.r.PathValue("node"), 10, 64)
		if p, ok := s.dsFolders[node]; !ok || p.CaseID != q.cid {
			reply(q.w, 400, false, "Invalid path node for this case", nil)
			return
		}
		if err := q.r.ParseMultipartForm(64 << 20); err != nil {
			reply(q.w, 400, false, "Data error", map[string]any{"file_content": []string{"No file provided"}})
			return
		}
		form := func(k string) string { return q.r.FormValue(k) }
		if form("file_original_name") == "" {
			reply(q.w, 400, false, "Data error", map[string]any{"file_original_name": []string{"Missing data for required field."}})
			return
		}
		file, hdr, err := q.r.FormFile("file_content")
		if err != nil {
			reply(q.w, 400, false, "Data error", map[string]any{"file_content": []string{"No file provided"}})
			return
		}
		defer file.Close()
		if hdr.Filename == "" {
			htmlError(q.w, http.StatusInternalServerError)
			return
		}
		content, _ := io.ReadAll(file)
		sum := sha256.Sum256(content)
		f := &DSFile{ID: s.id(), CaseID: q.cid, Parent: node, Name: form("file_original_name"), Description: form("file_description"),
			Tags: form("file_tags"), Password: form("file_password"), SHA256: strings.ToUpper(hex.EncodeToString(sum[:])),
			Size: int64(len(content)), IsIOC: formBool(q.r, "file_is_ioc"), IsEvidence: formBool(q.r, "file_is_evidence"),
			UserID: q.user.ID, Added: time.Now(), Content: content}
		f.UUID = fmt.Sprintf("file-uuid-%d", f.ID)
		if f.IsIOC != nil && *f.IsIOC && f.Password == "" {
			f.Password = "infected"
		}
		s.dsFiles[f.ID] = f
		reply(q.w, 200, true, "File saved in datastore ", dsFileDump(f))
	}))
}

// dsChildren is the subtree under a folder; s.mu is held.
func (s *Server) dsChildren(parent int64) map[string]any {
	out := map[string]any{}
	for _, f := range s.dsFolders {
		if f.Parent == parent && !f.Root {
			out[fmt.Sprintf("d-%d", f.ID)] = map[string]any{"name": f.Name, "type": "directory", "children": s.dsChildren(f.ID)}
		}
	}
	for _, f := range s.dsFiles {
		if f.Parent == parent {
			d := dsFileDump(f)
			d["type"] = "file"
			out[fmt.Sprintf("f-%d", f.ID)] = d
		}
	}
	return out
}

func dsFileDump(f *DSFile) map[string]any {
	return map[string]any{"file_id": f.ID, "file_uuid": f.UUID, "file_original_name": f.Name, "file_description": f.Description,
		"file_tags": f.Tags, "file_password": f.Password, "file_sha256": f.SHA256, "file_size": f.Size, "file_is_ioc": f.IsIOC,
		"file_is_evidence": f.IsEvidence, "file_parent_id": f.Parent, "file_case_id": f.CaseID, "added_by_user_id": f.UserID,
		"file_date_added": f.Added.Format("2006-01-02T15:04:05.000000"),
		"file_local_name": fmt.Sprintf("/home/iris/server_data/datastore/Regulars/case-%d/dsf-%s.zip", f.CaseID, f.UUID)}
}

// formBool reads a form flag as marshmallow does; nil when not sent.
func formBool(r *http.Request, k string) *bool {
	if _, ok := r.MultipartForm.Value[k]; !ok {
		return nil
	}
	v := strings.ToLower(r.FormValue(k))
	b := v == "true" || v == "1" || v == "on" || v == "y" || v == "yes"
	return &b
}
