// Package velociraptor is velohunt's client of the Velociraptor gRPC API. It
// uses only the stable /proto.API/Query method: every operation is a VQL
// query whose text is a constant of this package (vql.go), and every outside
// value (IOC values, descriptions, ids) travels as a VQLEnv variable. Errors
// that the server reports as log lines on a normally-ending stream are turned
// into Go errors.
package velociraptor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/velohunt/velohunt/internal/ioc"
	pb "github.com/velohunt/velohunt/proto"
)

// MaxRecvSize is the largest response part the client accepts. gRPC's
// default of 4 MiB is too small for hunts with large rows.
const MaxRecvSize = 64 << 20

// vql is the text of a VQL query. It is unexported and every value of it is
// a constant (see vql.go and TestQueriesAreConstant): outside strings can't
// become VQL text.
type vql string

// Client talks to one Velociraptor server.
type Client struct {
	conn    *grpc.ClientConn
	api     pb.APIClient
	timeout time.Duration
	observe func(op string, d time.Duration, err error)
}

// Options configure a Client.
type Options struct {
	// Timeout bounds each call (default 60s). Streams ended by the caller's
	// context are not bounded.
	Timeout time.Duration
	// Observe, when set, is told about every query: its operation name,
	// latency and error.
	Observe func(op string, d time.Duration, err error)
}

// Dial connects to the server described by an api_client config over mTLS.
// The connection is lazy: a server that is down makes calls fail with
// EUNAVAILABLE, not Dial.
func Dial(cfg APIConfig, opts Options) (*Client, error) {
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	recv := MaxRecvSize
	if cfg.MaxGRPCRecvSize > uint64(recv) && cfg.MaxGRPCRecvSize < 1<<31 {
		recv = int(cfg.MaxGRPCRecvSize)
	}
	conn, err := grpc.NewClient(cfg.Target(),
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(recv)))
	if err != nil {
		return nil, fmt.Errorf("dial velociraptor %s: %w", cfg.ConnectionString, err)
	}
	return NewWithConn(conn, opts), nil
}

// NewWithConn wraps an existing connection (tests use bufconn).
func NewWithConn(conn *grpc.ClientConn, opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	return &Client{conn: conn, api: pb.NewAPIClient(conn), timeout: opts.Timeout, observe: opts.Observe}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call describes one query.
type call struct {
	name    string // label shown in the server's logs
	text    vql
	env     map[string]string
	org     string
	timeout uint64 // server-side timeout in seconds, 0 = none
	stream  bool   // long-lived: no client-side timeout
	// idle, for a stream, bounds the wait for each answer instead (a
	// stream of results; not a watch, which is quiet by nature).
	idle bool
	// logs, when set, gets every log line: a function that yields null
	// says why only there, in words failureLog does not know.
	logs *[]string
}

// failureLog matches log lines that mean the query failed. The server ends
// the stream normally in these cases; the plugin just yields nothing.
var failureLog = regexp.MustCompile(`(?i)(PermissionDenied|Permission denied|VQL Error|Unknown artifact|unknown artifact|Timeout Error|not available in hunt|Symbol .* not found|Invalid argument)`)

// run sends the query and calls fn with every row, in order. Log lines that
// report a failure make run return an error after the stream ends (rows
// already passed to fn stay passed).
func (c *Client) run(ctx context.Context, q call, fn func(row json.RawMessage) error) (err error) {
	if c.observe != nil {
		start := time.Now()
		defer func() { c.observe(q.name, time.Since(start), err) }()
	}
	var stalled *time.Timer
	var idleFired atomic.Bool
	switch {
	case !q.stream:
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	case q.idle:
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stalled = time.AfterFunc(c.timeout, func() { idleFired.Store(true); cancel() })
		defer stalled.Stop()
	}
	args := &pb.VQLCollectorArgs{
		Query:   []*pb.VQLRequest{{Name: "velohunt-" + q.name, VQL: string(q.text)}},
		MaxRow:  500,
		MaxWait: 1,
		Timeout: q.timeout,
		OrgId:   q.org,
	}
	for _, k := range sortedKeys(q.env) {
		// Protobuf strings must be valid UTF-8; endpoint and IRIS text may not be.
		args.Env = append(args.Env, &pb.VQLEnv{Key: k, Value: strings.ToValidUTF8(q.env[k], "\uFFFD")})
	}
	st, err := c.api.Query(ctx, args)
	if err != nil {
		if idleFired.Load() {
			return ioc.Errorf(ioc.EUNAVAILABLE, "%s: no answer from the server for %s", q.name, c.timeout)
		}
		return grpcError(q.name, err)
	}
	var failures []string
	for {
		if stalled != nil {
			// The wait for the server's next answer; handling the last
			// one (the caller's fn) does not count.
			stalled.Reset(c.timeout)
		}
		resp, err := st.Recv()
		if stalled != nil {
			stalled.Stop()
		}
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			if idleFired.Load() {
				return ioc.Errorf(ioc.EUNAVAILABLE, "%s: no answer from the server for %s", q.name, c.timeout)
			}
			return grpcError(q.name, err)
		}
		if l := resp.GetLog(); l != "" {
			if q.logs != nil {
				*q.logs = append(*q.logs, strings.TrimSpace(l))
			}
			if failureLog.MatchString(l) {
				failures = append(failures, strings.TrimSpace(l))
			}
			continue
		}
		if r := resp.GetResponse(); r != "" && r != "[]" {
			var rows []json.RawMessage
			if err := json.Unmarshal([]byte(r), &rows); err != nil {
				return fmt.Errorf("%s: bad response part: %w", q.name, err)
			}
			for _, row := range rows {
				if err := fn(row); err != nil {
					return err
				}
			}
		}
	}
	if len(failures) > 0 {
		return logError(q.name, failures)
	}
	return nil
}

// rows runs a query and returns all its rows; for small results only.
func (c *Client) rows(ctx context.Context, q call) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := c.run(ctx, q, func(r json.RawMessage) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// logError classifies failure log lines.
func logError(op string, lines []string) error {
	msg := strings.Join(lines, "; ")
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	code := ioc.EINTERNAL
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "permission"):
		code = ioc.EPERMISSION
	case strings.Contains(low, "unknown artifact"), strings.Contains(low, "not available in hunt"):
		code = ioc.EINVALID
	case strings.Contains(low, "timeout"):
		code = ioc.EUNAVAILABLE
	}
	return fmt.Errorf("velociraptor %s: %w", op, &ioc.Error{Code: code, Message: msg})
}

// grpcError maps a gRPC status to velohunt's error codes.
func grpcError(op string, err error) error {
	s, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("velociraptor %s: %w", op, err)
		}
		return fmt.Errorf("velociraptor %s: %w", op, &ioc.Error{Code: ioc.EUNAVAILABLE, Message: err.Error()})
	}
	code := ioc.EINTERNAL
	switch s.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		code = ioc.EUNAVAILABLE
	case codes.PermissionDenied, codes.Unauthenticated:
		code = ioc.EPERMISSION
	case codes.Canceled:
		return fmt.Errorf("velociraptor %s: %w", op, context.Canceled)
	case codes.Unknown:
		// An unknown API user is reported as Unknown "User not found".
		if strings.Contains(s.Message(), "User not found") {
			code = ioc.EPERMISSION
		}
	case codes.InvalidArgument:
		code = ioc.EINVALID
	case codes.NotFound:
		code = ioc.ENOTFOUND // VFSGetBuffer: no such file in the file store
	}
	return fmt.Errorf("velociraptor %s: %w", op, &ioc.Error{Code: code, Message: s.Code().String() + ": " + s.Message()})
}
