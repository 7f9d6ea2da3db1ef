package render

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Event is the data of one timeline event.
type Event struct {
	IOCType, IOCValue string
	ClientID          string
	Hostname, FQDN    string
	OS, LastIP        string
	Source, Evidence  string
	When              time.Time // evidence time, else the hunt's
	WhenIsEvidence    bool
	HuntID, Server    string
	Org, HuntURL      string
}

// eventView is what the event templates see; every field is already safe
// for its place (Line for one-line use; code blocks sanitise again).
type eventView struct {
	IOC      struct{ TypeName, Value string }
	Hit      struct{ Source, Evidence string }
	Host     string
	HostLine string
	ClientID string
	When     string
	HuntID   string
	Server   string
	Org      string
	HuntURL  string
}

func (e Event) view() eventView {
	var v eventView
	v.IOC.TypeName, v.IOC.Value = Token(e.IOCType), e.IOCValue
	v.Hit.Source, v.Hit.Evidence = Token(e.Source), e.Evidence
	host := e.Hostname
	if host == "" {
		host = e.ClientID
	}
	v.Host = Clip(Line(host), 80)
	v.HostLine = fmt.Sprintf("%s  fqdn=%s  os=%s  last_ip=%s", host, e.FQDN, e.OS, e.LastIP)
	v.ClientID = Token(e.ClientID)
	if e.WhenIsEvidence {
		v.When = e.When.UTC().Format("2006-01-02 15:04:05 UTC") + " (time of the evidence)"
	} else {
		v.When = e.When.UTC().Format("2006-01-02 15:04:05 UTC") + " (time of the hunt; the evidence has no time)"
	}
	v.HuntID, v.Server = Token(e.HuntID), Token(e.Server)
	if e.Org != "" {
		v.Org = Token(e.Org)
	}
	v.HuntURL = Line(e.HuntURL) // built by velohunt from the configured GUI URL and a Token hunt id
	return v
}

// EventTitle renders the one-line title.
func (r *Renderer) EventTitle(e Event) (string, error) {
	s, err := r.exec("event_title.tmpl", e.view())
	if err != nil {
		return "", err
	}
	s = Clip(Shown(Line(s)), MaxTitle)
	if len([]rune(s)) < 2 { // IRIS needs at least two characters
		s = "Velociraptor hit"
	}
	return s, nil
}

// EventContent renders the Markdown content.
func (r *Renderer) EventContent(e Event) (string, error) {
	s, err := r.exec("event_content.tmpl", e.view())
	return Clip(Text(s), MaxField), err
}

// Raw returns the raw result row for event_raw, clipped and valid UTF-8.
func Raw(row []byte) string {
	s := strings.ToValidUTF8(string(row), "\uFFFD")
	if len(s) > MaxRaw {
		cut := MaxRaw
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + fmt.Sprintf("\n… (row clipped at %d bytes of %d)", cut, len(row))
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Tab is the data of one IOC's "Velociraptor hunt" tab.
type Tab struct {
	Status    string
	HitCount  int
	HostCount int
	Hunts     []TabHunt
	Hits      []TabHit
	Updated   time.Time
	// Instance is the writing velohunt's instance id, shown after the
	// time: one velohunt per IRIS, and none overwrites another's tab.
	Instance string
	// Withheld, when set, replaces the hosts, hunts and hits with this
	// note: the tab is read from cases whose readers must not see them.
	Withheld string
}

// TabHunt is one hunt on the tab.
type TabHunt struct {
	VRHuntID, Artifact, State, VRState string
	Finished, Scheduled, Errored       int64
	TotalRows                          int64
	CreatedAt, ExpiresAt               time.Time
	URL                                string
	LastError                          string
	// Gaps are the hosts that finished without searching everything
	// ("host: source: why"), at most a few; Uncovered counts them all.
	Gaps      []string
	Uncovered int
	// Scope says which clients the hunt was limited to ("" : every one).
	Scope string
}

// TabHit is one row of the hits table.
type TabHit struct {
	Case     string // "case #N" when the tab covers several cases, else ""
	Host     string
	When     string
	Source   string
	Evidence string
	// Collection says where the hit's follow-up collection stands ("" :
	// none).
	Collection string
}

// Field names of the tab, as created by `velohunt setup`.
const (
	FieldStatus  = "Status"
	FieldHosts   = "Hosts hit"
	FieldHunts   = "Hunts"
	FieldHits    = "Hits"
	FieldUpdated = "Last update"
)

// TabFields returns the tab's text fields (field name → value).
func (r *Renderer) TabFields(t Tab) (map[string]string, error) {
	hv := struct{ Hunts []TabHunt }{}
	for _, h := range t.Hunts {
		h.VRHuntID, h.Artifact, h.State, h.VRState = Line(h.VRHuntID), Line(h.Artifact), Line(h.State), Line(h.VRState)
		h.URL, h.LastError, h.Scope = Line(h.URL), Line(h.LastError), Clip(Line(h.Scope), 300)
		gaps := make([]string, 0, len(h.Gaps))
		for _, g := range h.Gaps {
			gaps = append(gaps, Clip(Line(g), 200))
		}
		h.Gaps = gaps
		hv.Hunts = append(hv.Hunts, h)
	}
	hunts, err := r.exec("tab_hunts.tmpl", hv)
	if err != nil {
		return nil, err
	}
	type hitView struct{ Case, Host, When, Source, Evidence, Collection string }
	tv := struct {
		HitCount, HostCount int
		Hits                []hitView
	}{HitCount: t.HitCount, HostCount: t.HostCount}
	for _, h := range t.Hits {
		tv.Hits = append(tv.Hits, hitView{Case: Line(h.Case), Host: Clip(Line(h.Host), 80), When: Line(h.When), Source: Line(h.Source), Evidence: Line(h.Evidence),
			Collection: Clip(Line(h.Collection), 400)})
	}
	hits, err := r.exec("tab_hits.tmpl", tv)
	if err != nil {
		return nil, err
	}
	if hunts == "" {
		hunts = "No hunt yet."
	}
	hosts := fmt.Sprint(t.HostCount)
	if t.Withheld != "" {
		note := Clip(Line(t.Withheld), 500)
		hosts, hunts, hits = "not shown", note, note
	}
	return map[string]string{
		FieldStatus:  Clip(Line(t.Status), 500),
		FieldHosts:   hosts,
		FieldHunts:   Clip(Text(hunts), MaxField),
		FieldHits:    Clip(Text(hits), MaxField),
		FieldUpdated: updated(t),
	}, nil
}

func updated(t Tab) string {
	if t.Instance == "" {
		return Date(t.Updated)
	}
	return Date(t.Updated) + " by velohunt " + Line(t.Instance)
}

// instanceOnTab finds the instance id in a tab's "Last update" field.
var instanceOnTab = regexp.MustCompile(`by velohunt (vi-[0-9a-f]{16})\b`)

// TabInstance returns the velohunt instance that wrote a tab, from its
// "Last update" field; "" for a tab written before instances were named,
// or never written.
func TabInstance(lastUpdate string) string {
	if m := instanceOnTab.FindStringSubmatch(lastUpdate); m != nil {
		return m[1]
	}
	return ""
}

// TabTemplate is the tab's definition for IRIS's IOC attribute template:
// text fields only (IRIS escapes their values; html fields would not be).
func TabTemplate() map[string]map[string]any {
	f := func(t string) map[string]any { return map[string]any{"type": t, "mandatory": false, "value": ""} }
	return map[string]map[string]any{
		FieldStatus:  f("input_string"),
		FieldHosts:   f("input_string"),
		FieldUpdated: f("input_string"),
		FieldHunts:   f("input_textfield"),
		FieldHits:    f("input_textfield"),
	}
}

// Token reduces a label (IOC type, row source, client or hunt id, server
// name) to a short run of plain characters without backticks, for an inline
// code span outside the fenced blocks.
func Token(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" .:/|_-+", r):
			b.WriteRune(r)
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
