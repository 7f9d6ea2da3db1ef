package render

import (
	"fmt"
	"path"
	"strings"
)

// Collection is the data of a follow-up collection's timeline event and
// IRIS evidence.
type Collection struct {
	IOCType, IOCValue string
	IRISIOC           int64
	ClientID          string
	Hostname          string
	Collected         bool   // false: it failed
	Reason            string // why it failed
	Path              string // the file ("" : none)
	Size              int64
	SHA256, MD5       string
	Artifacts         []string
	FlowID, HuntID    string
	Server, Org       string
	FlowURL           string
	Marker            string
	// Datastore is velohunt's sentence on the file's copy in IRIS's
	// datastore (made, or why not); "" when copies are off.
	Datastore string
}

// collectionView is what the collection templates see; each field is safe
// for its place (code blocks and spans sanitise again).
type collectionView struct {
	IOC struct {
		TypeName, Value string
		ID              int64
	}
	Host, ClientID, What string
	Collected            bool
	Reason, Path         string
	Size                 int64
	SHA256, MD5          string
	Artifacts            []string
	FlowID, HuntID       string
	Server, Org, FlowURL string
	Marker               string
	Datastore            string
}

func (c Collection) view() collectionView {
	var v collectionView
	v.IOC.TypeName, v.IOC.Value, v.IOC.ID = Token(c.IOCType), c.IOCValue, c.IRISIOC
	host := c.Hostname
	if host == "" {
		host = c.ClientID
	}
	v.Host = Clip(Line(host), 80)
	v.ClientID = Token(c.ClientID)
	v.Collected, v.Reason, v.Path, v.Size = c.Collected, Line(c.Reason), Line(c.Path), c.Size
	v.SHA256, v.MD5 = tokenOrEmpty(c.SHA256), tokenOrEmpty(c.MD5)
	for _, a := range c.Artifacts {
		v.Artifacts = append(v.Artifacts, Token(a))
	}
	v.What = "the collection"
	if c.Path != "" {
		v.What = Clip(Line(FileName(c.Path)), 80)
	}
	v.FlowID, v.HuntID, v.Server, v.Org = Token(c.FlowID), Token(c.HuntID), Token(c.Server), tokenOrEmpty(c.Org)
	v.FlowURL, v.Marker, v.Datastore = Line(c.FlowURL), Token(c.Marker), Shown(Line(c.Datastore))
	return v
}

// FileName is the last element of a Windows or Unix path.
func FileName(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	return path.Base(strings.TrimRight(p, "/"))
}

// CollectedTitle renders the one-line title of a collection's event.
func (r *Renderer) CollectedTitle(c Collection) (string, error) {
	s, err := r.exec("collected_title.tmpl", c.view())
	if err != nil {
		return "", err
	}
	s = Clip(Shown(Line(s)), MaxTitle)
	if len([]rune(s)) < 2 {
		s = "Velociraptor collection"
	}
	return s, nil
}

// CollectedContent renders the Markdown content of a collection's event.
func (r *Renderer) CollectedContent(c Collection) (string, error) {
	s, err := r.exec("collected_content.tmpl", c.view())
	return Clip(Text(s), MaxField), err
}

// EvidenceDescription renders the Markdown description of a collection's
// IRIS evidence.
func (r *Renderer) EvidenceDescription(c Collection) (string, error) {
	s, err := r.exec("evidence_description.tmpl", c.view())
	return Clip(Text(s), MaxField), err
}

// EvidenceFilename is the evidence record's file name, shown as text by
// IRIS: the file's name, else the flow's; at least two characters, as
// IRIS requires.
func EvidenceFilename(c Collection) string {
	name := "velociraptor-" + Token(c.FlowID)
	if c.Path != "" {
		name = Clip(Shown(Line(FileName(c.Path))), 200)
	}
	if len([]rune(name)) < 2 {
		name = fmt.Sprintf("file %s", name)
	}
	return name
}

// tokenOrEmpty is Token, and "" for "" (templates test it to leave a part
// out).
func tokenOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return Token(s)
}
