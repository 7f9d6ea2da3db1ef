// Package velotest is a simulated Velociraptor server for tests, the demo
// and benchmarks. It speaks the real wire protocol (gRPC /proto.API/Query
// over mutual TLS on loopback, with an api_client config like the real one)
// and follows contracts/velociraptor-api.md: errors arrive as log lines on a
// stream that ends normally, hunt() yields null on failure, hunts created
// paused start when hunt_update(start=TRUE) is called, and rows carry
// FlowId, ClientId, _OrgId and Fqdn. Endpoints are scripted: each has files,
// connections and DNS entries, and velohunt's artifacts match IOCs against
// them.
package velotest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	pb "github.com/velohunt/velohunt/proto"
)

// Permissions of a simulated API user.
const (
	PermAnyQuery       = "ANY_QUERY"
	PermReadResults    = "READ_RESULTS"
	PermStartHunt      = "START_HUNT"
	PermCollectClient  = "COLLECT_CLIENT"
	PermArtifactWriter = "ARTIFACT_WRITER"
)

// Investigator is the permission set of roles investigator+artifact_writer,
// the identity velohunt needs.
var Investigator = []string{PermAnyQuery, PermReadResults, PermStartHunt, PermCollectClient, PermArtifactWriter}

// Request is a query the server received.
type Request struct {
	User string
	VQL  string
	Env  map[string]string
	Org  string
}

// Server is a running simulated Velociraptor server.
type Server struct {
	pb.UnimplementedAPIServer

	pki  *pki
	lis  net.Listener
	grpc *grpc.Server

	mu        sync.Mutex
	users     map[string]map[string]bool
	endpoints map[string]*Endpoint // by client id
	artifacts map[string]string    // name → YAML, per upload
	hunts     map[string]*Hunt
	flowHunts map[string]string // hunt id of each relaunched flow (F.X)
	order     []string          // hunt ids in creation order
	received  []Request
	down      bool
	delay     time.Duration
	failNext  []codes.Code
	watchers  map[chan flowDone]struct{}
	seq       int
	// Behaviours compute the rows of an artifact on one endpoint. The four
	// velohunt artifacts are preset; tests may add or replace entries.
	behaviours map[string]Behaviour
	// LogOnHunt, when set, is sent as a log line by every hunt() call, which
	// then yields null (e.g. "hunt: Unknown artifact X").
	logOnHunt string
	sources   map[string]RowSource
	flowLoads int // flow details loaded by hunt_flows()
	// Collections started by collect_client(), by flow id and in the
	// order they were asked for; logOnCollect is SetCollectFailure's.
	collections  map[string]*Collection
	collectOrder []string
	logOnCollect string
	// vfsReads counts VFSGetBuffer calls that reached the file store.
	vfsReads int
}

// Behaviour returns the rows an artifact yields on an endpoint for the
// hunt's parameters.
type Behaviour func(ep *Endpoint, params map[string]string) []map[string]any

type flowDone struct{ flowID, clientID string }

// Start starts a server on 127.0.0.1:0 with one API user, "velohunt", with
// the Investigator permissions.
func Start() (*Server, error) {
	p, err := newPKI()
	if err != nil {
		return nil, fmt.Errorf("velotest pki: %w", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("velotest listen: %w", err)
	}
	s := &Server{
		pki: p, lis: lis,
		users:       map[string]map[string]bool{},
		endpoints:   map[string]*Endpoint{},
		artifacts:   map[string]string{},
		hunts:       map[string]*Hunt{},
		flowHunts:   map[string]string{},
		watchers:    map[chan flowDone]struct{}{},
		behaviours:  defaultBehaviours(),
		collections: map[string]*Collection{},
	}
	s.SetUser("velohunt", Investigator...)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.serverCert},
		ClientCAs:    p.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	s.grpc = grpc.NewServer(grpc.Creds(creds))
	pb.RegisterAPIServer(s.grpc, s)
	go s.grpc.Serve(lis)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	s.grpc.Stop()
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// SetUser creates or replaces an API user with the given permissions.
func (s *Server) SetUser(name string, perms ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]bool{}
	for _, p := range perms {
		m[p] = true
	}
	s.users[name] = m
}

// APIConfigYAML returns an api_client config for the user, as
// `velociraptor config api_client --name USER` writes it.
func (s *Server) APIConfigYAML(user string) ([]byte, error) {
	cert, key, err := s.pki.issue(user, false)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(map[string]string{
		"ca_certificate":        string(s.pki.caPEM),
		"client_cert":           string(cert),
		"client_private_key":    string(key),
		"api_connection_string": s.Addr(),
		"name":                  user,
	})
}

// WriteAPIConfig writes the api_client config of user into dir with mode
// 0600 and returns its path.
func (s *Server) WriteAPIConfig(dir, user string) (string, error) {
	b, err := s.APIConfigYAML(user)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, user+".api.config.yaml")
	return path, os.WriteFile(path, b, 0o600)
}

// SetDown makes every call fail with gRPC Unavailable while down is true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// SetDelay makes every call wait d before it is answered (a slow or
// stalled server), unless the caller gives up first.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// FailNext makes the next calls fail with the given gRPC codes, in order.
func (s *Server) FailNext(c ...codes.Code) {
	s.mu.Lock()
	s.failNext = append(s.failNext, c...)
	s.mu.Unlock()
}

// SetHuntFailure makes every hunt() log line and return null.
func (s *Server) SetHuntFailure(logLine string) {
	s.mu.Lock()
	s.logOnHunt = logLine
	s.mu.Unlock()
}

// SetBehaviour sets the rows an artifact yields.
func (s *Server) SetBehaviour(artifact string, b Behaviour) {
	s.mu.Lock()
	s.behaviours[artifact] = b
	s.mu.Unlock()
}

// Received returns a copy of every query received so far.
func (s *Server) Received() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.received...)
}

// Artifact returns an uploaded artifact definition.
func (s *Server) Artifact(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	y, ok := s.artifacts[name]
	return y, ok
}

// Query implements /proto.API/Query.
func (s *Server) Query(args *pb.VQLCollectorArgs, st pb.API_QueryServer) error {
	user, err := userOf(st.Context())
	if err != nil {
		return err
	}
	if len(args.GetQuery()) == 0 {
		return status.Error(codes.InvalidArgument, "Query should be specified.")
	}
	env := map[string]string{}
	for _, e := range args.GetEnv() {
		env[e.GetKey()] = e.GetValue()
	}
	s.mu.Lock()
	if d := s.delay; d > 0 {
		s.mu.Unlock()
		select {
		case <-time.After(d):
		case <-st.Context().Done():
			return st.Context().Err()
		}
		s.mu.Lock()
	}
	if s.down {
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "connection refused")
	}
	if len(s.failNext) > 0 {
		c := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.mu.Unlock()
		return status.Error(c, "injected failure")
	}
	perms, ok := s.users[user]
	if !ok {
		s.mu.Unlock()
		return status.Errorf(codes.Unknown, "User not found: %s", user)
	}
	if !perms[PermAnyQuery] {
		s.mu.Unlock()
		return status.Errorf(codes.PermissionDenied, "Permission denied: User %s requires permission ANY_QUERY to run queries", user)
	}
	for _, q := range args.GetQuery() {
		s.received = append(s.received, Request{User: user, VQL: q.GetVQL(), Env: env, Org: args.GetOrgId()})
	}
	s.mu.Unlock()

	out := &responder{st: st, maxRow: int(args.GetMaxRow())}
	for i, q := range args.GetQuery() {
		out.queryID = uint64(i)
		if err := s.dispatch(st.Context(), user, q.GetVQL(), env, orgOf(args.GetOrgId()), out); err != nil {
			return err
		}
	}
	return nil
}

func orgOf(org string) string {
	if org == "" {
		return "root"
	}
	return org
}

func userOf(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return "", status.Error(codes.Unauthenticated, "no client certificate")
	}
	return ti.State.PeerCertificates[0].Subject.CommonName, nil
}

// responder sends rows in parts and log lines as their own messages.
type responder struct {
	st      pb.API_QueryServer
	maxRow  int
	queryID uint64
	part    uint64
}

func (r *responder) log(format string, args ...any) error {
	return r.st.Send(&pb.VQLResponse{Log: fmt.Sprintf(format, args...), Timestamp: uint64(time.Now().UnixMicro())})
}

// rows sends rows in parts of maxRow and always ends with an empty part, as
// the real server does for every SELECT.
func (r *responder) rows(rows []json.RawMessage) error {
	n := r.maxRow
	if n <= 0 {
		n = 1
	}
	for len(rows) > 0 {
		k := min(n, len(rows))
		if err := r.send(rows[:k]); err != nil {
			return err
		}
		rows = rows[k:]
	}
	return r.send(nil)
}

func (r *responder) send(rows []json.RawMessage) error {
	body := []byte("[]")
	var cols []string
	if len(rows) > 0 {
		var err error
		if body, err = json.Marshal(rows); err != nil {
			return err
		}
		var first map[string]json.RawMessage
		if json.Unmarshal(rows[0], &first) == nil {
			for k := range first {
				cols = append(cols, k)
			}
			sort.Strings(cols)
		}
	}
	r.part++
	return r.st.Send(&pb.VQLResponse{Response: string(body), Columns: cols, QueryId: r.queryID, Part: r.part,
		Timestamp: uint64(time.Now().UnixMicro())})
}

func mustRow(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// dispatch recognises each query velohunt sends by the plugin or function
// it calls, the way a reader of the VQL would; any other text is a VQL error.
func (s *Server) dispatch(ctx context.Context, user, text string, env map[string]string, org string, out *responder) error {
	switch {
	case strings.Contains(text, "config.version.version"):
		return out.rows([]json.RawMessage{mustRow(map[string]string{"Version": "0.77.2"})})
	case strings.Contains(text, "hunt(artifacts="):
		return s.createHunt(user, env, org, out)
	case strings.Contains(text, "hunt_update(") && strings.Contains(text, "start=TRUE"):
		return s.updateHunt(user, env, org, true, out)
	case strings.Contains(text, "hunt_update(") && strings.Contains(text, "stop=TRUE"):
		return s.updateHunt(user, env, org, false, out)
	case strings.Contains(text, "user(user=whoami())"):
		return s.whoami(user, out)
	case strings.Contains(text, "FROM hunts(summary=TRUE) LIMIT"):
		if !s.can(user, PermReadResults) {
			out.log("hunts: PermissionDenied: Permission denied: [READ_RESULTS]")
		}
		return out.rows(nil)
	case strings.Contains(text, "FROM hunts(summary=TRUE) WHERE"):
		return s.findHunts(user, env, org, out)
	case strings.Contains(text, "FROM hunts(hunt_id="):
		return s.huntInfo(user, env, org, out)
	case strings.Contains(text, "FROM source(hunt_id="):
		return s.huntResults(user, env, org, out)
	case strings.Contains(text, "collect_client("):
		return s.collectClient(user, env, org, out)
	case strings.Contains(text, "cancel_flow("):
		return s.cancelFlow(user, env, org, out)
	case strings.Contains(text, "FROM flows(client_id=VhClientId, flow_id="):
		return s.flowStatus(user, env, org, out)
	case strings.Contains(text, "FROM flows(client_id=VhClientId) WHERE VhArtifact in request.artifacts"):
		return s.clientCollections(user, env, org, out)
	case strings.Contains(text, "FROM uploads(client_id="):
		return s.flowUploads(user, env, org, out)
	case strings.Contains(text, "FROM source(client_id="):
		return s.flowResults(user, env, org, out)
	case strings.Contains(text, "FROM hunt_flows(hunt_id="):
		return s.huntFlows(user, text, env, org, out)
	case strings.Contains(text, "FROM clients() GROUP BY"):
		return s.clientVersions(user, org, out)
	case strings.Contains(text, "client_info("):
		return s.clientInfo(user, env, org, out)
	case strings.Contains(text, "artifact_set("):
		return s.setArtifact(user, env, out)
	case strings.Contains(text, "artifact_definitions("):
		return s.getArtifacts(user, env, out)
	case strings.Contains(text, "watch_monitoring(artifact='System.Flow.Completion')"):
		return s.watch(ctx, user, out)
	}
	if err := out.log("VQL Error: velotest does not understand this query"); err != nil {
		return err
	}
	return out.rows(nil)
}

// need returns the env values, or logs the missing symbol like the real
// server (the variable would be null) and reports false.
func need(out *responder, env map[string]string, keys ...string) ([]string, bool) {
	vals := make([]string, len(keys))
	for i, k := range keys {
		v, ok := env[k]
		if !ok {
			out.log("VQL Error: Symbol %s not found", k)
			return nil, false
		}
		vals[i] = v
	}
	return vals, true
}

func (s *Server) can(user, perm string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user][perm]
}

// whoami answers with the user and the roles its permissions amount to.
func (s *Server) whoami(user string, out *responder) error {
	s.mu.Lock()
	perms := s.users[user]
	s.mu.Unlock()
	var roles []string
	if perms[PermStartHunt] && perms[PermCollectClient] {
		roles = append(roles, "investigator")
	} else if perms[PermAnyQuery] && perms[PermReadResults] {
		roles = append(roles, "api")
	} else if perms[PermReadResults] {
		roles = append(roles, "reader")
	}
	if perms[PermArtifactWriter] {
		roles = append(roles, "artifact_writer")
	}
	return out.rows([]json.RawMessage{mustRow(map[string]any{"Name": user, "User": map[string]any{"name": user, "roles": roles}})})
}
