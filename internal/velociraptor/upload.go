package velociraptor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
	pb "github.com/velohunt/velohunt/proto"
)

// Upload is a file a flow uploaded, as the server stored it.
type Upload struct {
	// ClientPath is the file's path on the client.
	ClientPath string
	// Components is its path in the org's file store.
	Components []string
	// Size is the file's size on the client; Stored the bytes stored.
	Size, Stored int64
}

// FlowUploads lists the files a flow uploaded (none for an unknown flow).
func (c *Client) FlowUploads(ctx context.Context, org, clientID, flowID string) ([]Upload, error) {
	var out []Upload
	err := c.run(ctx, call{name: "flow-uploads", text: vqlFlowUploads,
		env: map[string]string{"VhClientId": clientID, "VhFlowId": flowID}, org: org}, func(raw json.RawMessage) error {
		var v struct {
			ClientPath string   `json:"client_path"`
			Components []string `json:"Components"`
			Size       jsonInt  `json:"file_size"`
			Stored     jsonInt  `json:"uploaded_size"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("velociraptor flow-uploads %s: bad row: %w", flowID, err)
		}
		out = append(out, Upload{ClientPath: v.ClientPath, Components: v.Components, Size: int64(v.Size), Stored: int64(v.Stored)})
		return nil
	})
	return out, err
}

// bufferSlice is how much one VFSGetBuffer call reads: well under the
// 4 MiB messages gRPC accepts by default.
const bufferSlice = 1 << 20

// ReadUpload copies a stored upload to w in slices read with VFSGetBuffer
// (the stable API; it needs READ_RESULTS in the org), never holding more
// than one slice. It stops with EINVALID once more than limit bytes
// came, and returns the bytes copied. A path the file store does not have
// is ENOTFOUND (gRPC NotFound, seen on 0.77.2).
func (c *Client) ReadUpload(ctx context.Context, org string, u Upload, limit int64, w io.Writer) (n int64, err error) {
	if len(u.Components) == 0 {
		return 0, ioc.Errorf(ioc.EINVALID, "read upload: no file store path")
	}
	if c.observe != nil {
		start := time.Now()
		defer func() { c.observe("read-upload", time.Since(start), err) }()
	}
	padding := true // a sparse upload reads as the file it was, holes as zeros
	for {
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		b, err := c.api.VFSGetBuffer(cctx, &pb.VFSFileBuffer{Components: u.Components, OrgId: org, Offset: uint64(n),
			Length: bufferSlice, Padding: &padding})
		cancel()
		if err != nil {
			return n, grpcError("read-upload", err)
		}
		data := b.GetData()
		if n+int64(len(data)) > limit {
			return n, fmt.Errorf("velociraptor read-upload: %w", &ioc.Error{Code: ioc.EINVALID,
				Message: fmt.Sprintf("more than %d bytes stored", limit)})
		}
		if _, err := w.Write(data); err != nil {
			return n, err
		}
		n += int64(len(data))
		if len(data) < bufferSlice {
			return n, nil
		}
	}
}
