package ioc

import "time"

// Case is an IRIS case as velohunt sees it.
type Case struct {
	ID       int64
	Name     string
	Customer string
	Tags     []string
	Open     bool
	State    string // IRIS state name: "Open", "Containment", "Closed"...
	// Custom holds the case's custom attribute values, tab → field → text
	// (read only when routing uses one).
	Custom map[string]map[string]string
}

// IOC is an IOC as IRIS stores it: a global row (IRIS 2.4) that one or more
// cases link to.
type IOC struct {
	ID       int64 // IRIS ioc_id
	Value    string
	TypeID   int64
	TypeName string
	TLPID    int64
	UserID   int64 // last writer in IRIS
	// LinkedCases are the other cases that link this IOC and that the
	// caller can access (the case IOC list's "link"; empty elsewhere).
	LinkedCases []int64
}

// Route names the Velociraptor server and org a case is hunted on.
type Route struct {
	Server string
	Org    string // "" is the root org
	// Scope is the encoded scope of the routing rule that matched ("" :
	// none); see Scope.Encode.
	Scope string
	// NoCollect turns follow-up collections off for the cases of the
	// routing rule (they are hunted as usual).
	NoCollect bool
}

// Hit is one match of an IOC on an endpoint, as read from a hunt's results.
type Hit struct {
	HuntID   string // Velociraptor hunt id, "H.…"
	ClientID string
	IOCValue string // the hunt value the artifact matched
	Evidence string // where it was found (path, connection, DNS entry…)
	Time     time.Time
	Row      []byte // the raw result row as JSON
}
