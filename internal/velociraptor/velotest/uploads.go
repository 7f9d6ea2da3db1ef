package velotest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/velohunt/velohunt/proto"
)

// flowUploads serves uploads(client_id=, flow_id=): a row per file the
// flow uploaded, with its client path and file store components; none for
// an unknown flow (0.77.2 logs that it cannot open the upload metadata).
func (s *Server) flowUploads(user string, env map[string]string, org string, out *responder) error {
	vals, ok := need(out, env, "VhClientId", "VhFlowId")
	if !ok {
		return out.rows(nil)
	}
	if !s.can(user, PermReadResults) {
		out.log("uploads: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	s.mu.Lock()
	c, found := s.collections[vals[1]]
	var rows []json.RawMessage
	if found && c.ClientID == vals[0] && c.Org == org {
		for _, u := range c.Uploads {
			rows = append(rows, mustRow(map[string]any{"client_path": u.ClientPath, "Components": u.Components,
				"file_size": u.Size, "uploaded_size": u.Size}))
		}
	}
	s.mu.Unlock()
	if !found {
		out.log("uploads: open upload metadata: no such file or directory")
	}
	return out.rows(rows)
}

// VFSGetBuffer serves a slice of a stored upload as 0.77.2 does
// (api/api.go): READ_RESULTS in the org is needed ("User is not allowed to
// view the VFS."); with no client id, components is the path in the org's
// file store; a path it does not have is NotFound; a slice past the end is
// short or empty.
func (s *Server) VFSGetBuffer(ctx context.Context, in *pb.VFSFileBuffer) (*pb.VFSFileBuffer, error) {
	user, err := userOf(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	if len(s.failNext) > 0 {
		c := s.failNext[0]
		s.failNext = s.failNext[1:]
		return nil, status.Error(c, "injected failure")
	}
	perms, ok := s.users[user]
	if !ok {
		return nil, status.Errorf(codes.Unknown, "User not found: %s", user)
	}
	if !perms[PermReadResults] {
		return nil, status.Error(codes.PermissionDenied, "User is not allowed to view the VFS.")
	}
	if in.GetClientId() != "" || len(in.GetComponents()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "Invalid pathspec")
	}
	org := orgOf(in.GetOrgId())
	s.vfsReads++
	for _, id := range s.collectOrder {
		c := s.collections[id]
		if c.Org != org {
			continue
		}
		for _, u := range c.Uploads {
			if slices.Equal(u.Components, in.GetComponents()) {
				b := u.bytes()
				from := min(int64(in.GetOffset()), int64(len(b)))
				to := min(from+int64(in.GetLength()), int64(len(b)))
				return &pb.VFSFileBuffer{Data: slices.Clone(b[from:to])}, nil
			}
		}
	}
	return nil, status.Errorf(codes.NotFound, "open %s: no such file or directory", strings.Join(in.GetComponents(), "/"))
}

// VFSReads returns how many VFSGetBuffer calls reached the file store.
func (s *Server) VFSReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vfsReads
}
