package velotest

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Endpoint is a simulated Velociraptor client and what is on it.
type Endpoint struct {
	ClientID string
	Hostname string
	FQDN     string
	OS       string // windows, linux, darwin
	Release  string
	// Version is the client's release, as clients() and client_info()
	// report it in agent_information.version; AddEndpoint makes ""
	// DefaultClientVersion. NoVersion stands for a client never
	// interrogated, which reports none.
	Version string
	LastIP  string
	Org     string // "root" when empty
	Online  bool
	Labels  []string // Velociraptor labels, for hunts scoped by label
	// FlowError, when set, ends every flow of the endpoint in ERROR with
	// this status (a query timeout, say) and no rows.
	FlowError string
	// FlowErrorRows is how many of the artifact's rows an ERROR flow
	// keeps (sent before it failed); 0 by default.
	FlowErrorRows int
	// Hang (adversarial review) makes every flow of the endpoint stay
	// IN_PROGRESS with no rows, for ever: a compromised or vanished host
	// that took the collection and never reported.
	Hang  bool
	Files []File
	Conns []Conn
	DNS   []DNSEntry
	// Cannot names the sources of velohunt's artifacts that fall short on
	// the endpoint (a disabled plugin, say), with the problem reported;
	// "" reports that the source searched nothing. Every other source
	// reports a search, as on a real host.
	Cannot map[string]string
}

// File is a file on an endpoint; Process marks a running process image.
type File struct {
	Path              string
	Size              int64
	MD5, SHA1, SHA256 string
	// Content, when set, is the file's bytes: AddEndpoint fills Size
	// and the hashes left empty from it.
	Content []byte
	// Link, when set, makes the entry a symbolic link to Link: velohunt's
	// hash hunt does not read it and its collection refuses it.
	Link    string
	Mtime   time.Time
	Process bool
	Pid     int
}

// Conn is a network connection.
type Conn struct {
	Pid               int
	Process           string
	LocalIP, RemoteIP string
	LocalPort         int
	RemotePort        int
	Status            string
	Time              time.Time
}

// DNSEntry is a DNS cache entry.
type DNSEntry struct {
	Name   string
	Record string // the resolved address
}

// AddEndpoint adds or replaces an endpoint. An online endpoint joins every
// running, unexpired hunt of its org, as a late client does when it comes
// online.
func (s *Server) AddEndpoint(ep Endpoint) {
	if ep.Org == "" {
		ep.Org = "root"
	}
	if ep.Version == "" {
		ep.Version = DefaultClientVersion
	}
	if ep.FQDN == "" {
		ep.FQDN = ep.Hostname
	}
	ep.Files = slices.Clone(ep.Files)
	for i := range ep.Files {
		ep.Files[i].fill()
	}
	e := ep
	var done []flowDone
	s.mu.Lock()
	s.endpoints[e.ClientID] = &e
	if e.Online {
		now := time.Now()
		for _, id := range s.order {
			h := s.hunts[id]
			if h.State == "RUNNING" && h.Org == e.Org && now.Before(h.Expires) && !h.Scheduled[e.ClientID] && h.covers(&e) {
				done = append(done, s.runOn(h, &e))
			}
		}
		s.runWaitingCollections(&e)
	}
	s.mu.Unlock()
	s.notify(done)
}

// fill sets the size and hashes left empty from Content.
func (f *File) fill() {
	if f.Content == nil {
		return
	}
	if f.Size == 0 {
		f.Size = int64(len(f.Content))
	}
	m, s1, s2 := md5.Sum(f.Content), sha1.Sum(f.Content), sha256.Sum256(f.Content)
	for _, h := range []struct {
		dst *string
		sum []byte
	}{{&f.MD5, m[:]}, {&f.SHA1, s1[:]}, {&f.SHA256, s2[:]}} {
		if *h.dst == "" {
			*h.dst = hex.EncodeToString(h.sum)
		}
	}
}

// Client versions of simulated endpoints.
const (
	// DefaultClientVersion is the release of an endpoint added without
	// one: the simulated server's own.
	DefaultClientVersion = "0.77.2"
	// NoVersion makes an endpoint report an empty version, as a client
	// the server has not interrogated yet does.
	NoVersion = "none"
)

// reportedVersion is the version an endpoint reports.
func (ep *Endpoint) reportedVersion() string {
	if ep.Version == NoVersion {
		return ""
	}
	return ep.Version
}

// clientVersions answers clients() grouped by version, as the real
// server does: one row per distinct version ("" for clients never
// interrogated), with the count of the org's clients.
func (s *Server) clientVersions(user, org string, out *responder) error {
	if !s.can(user, PermReadResults) {
		out.log("clients: PermissionDenied: Permission denied: [READ_RESULTS]")
		return out.rows(nil)
	}
	s.mu.Lock()
	counts := map[string]int{}
	var order []string
	for _, ep := range s.sortedEndpoints() {
		if ep.Org != org {
			continue
		}
		v := ep.reportedVersion()
		if _, ok := counts[v]; !ok {
			order = append(order, v)
		}
		counts[v]++
	}
	s.mu.Unlock()
	rows := make([]json.RawMessage, 0, len(order))
	for _, v := range order {
		rows = append(rows, mustRow(map[string]any{"Version": v, "Clients": counts[v]}))
	}
	return out.rows(rows)
}

// sortedEndpoints returns endpoints by client id; s.mu is held.
func (s *Server) sortedEndpoints() []*Endpoint {
	out := make([]*Endpoint, 0, len(s.endpoints))
	for _, ep := range s.endpoints {
		out = append(out, ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out
}

// iocList reads the IOCs parameter (a JSON array of strings).
func iocList(params map[string]string) map[string]bool {
	var list []string
	json.Unmarshal([]byte(params["IOCs"]), &list)
	m := make(map[string]bool, len(list))
	for _, v := range list {
		m[v] = true
	}
	return m
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// defaultBehaviours mirror templates/artifacts: every row has IOC, Source,
// Evidence and EventTime columns, plus the kind's own columns.
func defaultBehaviours() map[string]Behaviour {
	return map[string]Behaviour{
		"Custom.Velohunt.Hash":    hashBehaviour,
		"Custom.Velohunt.Network": networkBehaviour,
		"Custom.Velohunt.Domain":  domainBehaviour,
		"Custom.Velohunt.File":    fileBehaviour,
	}
}

// coverage returns the last rows of one of velohunt's artifacts: what each
// of its sources searched (see Endpoint.Cannot).
func coverage(ep *Endpoint, sources ...string) []map[string]any {
	var rows []map[string]any
	for _, src := range sources {
		searched, problem := 100, ""
		if p, ok := ep.Cannot[src]; ok {
			searched, problem = 0, p
		}
		rows = append(rows, map[string]any{"IOC": "", "Source": "coverage", "Evidence": "", "EventTime": nil,
			"Coverage": map[string]any{"Source": src, "Unit": "items", "Searched": searched, "Problem": problem}})
	}
	return rows
}

func hashBehaviour(ep *Endpoint, params map[string]string) []map[string]any {
	want := iocList(params)
	// Like Custom.Velohunt.Hash, only the kinds of hash in the list are
	// computed and returned.
	need := map[int]bool{}
	for v := range want {
		need[len(v)] = true
	}
	only := func(h string) string {
		if need[len(h)] {
			return h
		}
		return ""
	}
	var rows []map[string]any
	for _, f := range ep.Files {
		if f.Link != "" {
			continue // links are not followed
		}
		for _, h := range []string{f.MD5, f.SHA1, f.SHA256} {
			if h == "" || !want[strings.ToLower(h)] {
				continue
			}
			src := "file"
			if f.Process {
				src = "process"
			}
			rows = append(rows, map[string]any{"IOC": strings.ToLower(h), "Source": src, "Evidence": f.Path,
				"EventTime": ts(f.Mtime), "OSPath": f.Path, "Size": f.Size, "Pid": f.Pid,
				"MD5": only(f.MD5), "SHA1": only(f.SHA1), "SHA256": only(f.SHA256)})
		}
	}
	return append(rows, coverage(ep, "files", "processes")...)
}

func networkBehaviour(ep *Endpoint, params map[string]string) []map[string]any {
	want := iocList(params)
	var rows []map[string]any
	for _, c := range ep.Conns {
		for _, cand := range []string{c.RemoteIP + "|" + strconv.Itoa(c.RemotePort), c.RemoteIP, c.LocalIP + "|" + strconv.Itoa(c.LocalPort), c.LocalIP} {
			if want[cand] {
				rows = append(rows, map[string]any{"IOC": cand, "Source": "connection",
					"Evidence":  c.LocalIP + ":" + strconv.Itoa(c.LocalPort) + " -> " + c.RemoteIP + ":" + strconv.Itoa(c.RemotePort) + " (" + c.Status + ", pid " + strconv.Itoa(c.Pid) + " " + c.Process + ")",
					"EventTime": ts(c.Time), "Pid": c.Pid, "ProcessName": c.Process, "LocalIP": c.LocalIP, "LocalPort": c.LocalPort,
					"RemoteIP": c.RemoteIP, "RemotePort": c.RemotePort, "Status": c.Status})
				break
			}
		}
	}
	if ep.OS == "windows" {
		for _, d := range ep.DNS {
			if want[d.Record] {
				rows = append(rows, map[string]any{"IOC": d.Record, "Source": "dns_cache", "Evidence": d.Name + " -> " + d.Record,
					"EventTime": nil, "Name": d.Name, "Record": d.Record})
			}
		}
		return append(rows, coverage(ep, "connections", "dns_cache")...)
	}
	return append(rows, coverage(ep, "connections")...)
}

func domainBehaviour(ep *Endpoint, params map[string]string) []map[string]any {
	want := iocList(params)
	var rows []map[string]any
	if ep.OS != "windows" {
		// The DNS cache and Sysmon DNS events exist on Windows only.
		return coverage(ep, "hosts_file")
	}
	for _, d := range ep.DNS {
		name := strings.TrimSuffix(strings.ToLower(d.Name), ".")
		// One row per matching IOC: the name and each parent domain.
		for cand := name; cand != ""; {
			if want[cand] {
				rows = append(rows, map[string]any{"IOC": cand, "Source": "dns_cache", "Evidence": d.Name + " -> " + d.Record,
					"EventTime": nil, "Name": d.Name, "Record": d.Record})
			}
			i := strings.IndexByte(cand, '.')
			if i < 0 {
				break
			}
			cand = cand[i+1:]
		}
	}
	return append(rows, coverage(ep, "hosts_file", "dns_cache")...)
}

func fileBehaviour(ep *Endpoint, params map[string]string) []map[string]any {
	want := iocList(params)
	lower := map[string]string{}
	for v := range want {
		lower[strings.ToLower(v)] = v
	}
	var rows []map[string]any
	for _, f := range ep.Files {
		p := f.Path
		base := path.Base(strings.ReplaceAll(p, `\`, "/"))
		match, ok := lower[strings.ToLower(p)]
		if !ok {
			match, ok = lower[strings.ToLower(base)]
		}
		if ok {
			rows = append(rows, map[string]any{"IOC": match, "Source": "file", "Evidence": p, "EventTime": ts(f.Mtime),
				"OSPath": p, "Size": f.Size})
		}
	}
	var sources []string
	for v := range want {
		if strings.ContainsAny(v, `/\`) {
			sources = append(sources, "file_paths")
			break
		}
	}
	for v := range want {
		if !strings.ContainsAny(v, `/\`) {
			sources = append(sources, "file_names")
			break
		}
	}
	return append(rows, coverage(ep, sources...)...)
}
