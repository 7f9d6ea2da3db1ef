package ioc

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Scope limits a hunt to some of a server's clients: those with one of
// IncludeLabels (every client when empty), never one with an ExcludeLabels
// label, only clients of OS (windows, linux or darwin; every OS when
// empty). Velociraptor 0.77.2's hunt() drops every label condition when an
// OS is set (vql/server/hunts/create.go: the OS condition replaces the
// whole condition, excluded labels included), so a scope has an OS or
// labels, never both; the configuration refuses the mix.
type Scope struct {
	IncludeLabels []string `json:"include_labels,omitempty"`
	ExcludeLabels []string `json:"exclude_labels,omitempty"`
	OS            string   `json:"os,omitempty"`
}

// Narrow returns s narrowed by a more specific scope t (a server's scope by
// a kind's): excluded labels add up; t's included labels and OS, when set,
// replace s's.
func (s Scope) Narrow(t Scope) Scope {
	out := Scope{IncludeLabels: s.IncludeLabels, OS: s.OS}
	if len(t.IncludeLabels) > 0 {
		out.IncludeLabels = t.IncludeLabels
	}
	if t.OS != "" {
		out.OS = t.OS
	}
	out.ExcludeLabels = append(slices.Clone(s.ExcludeLabels), t.ExcludeLabels...)
	return out.canonical()
}

func (s Scope) canonical() Scope {
	norm := func(l []string) []string {
		if len(l) == 0 {
			return nil
		}
		l = slices.Clone(l)
		slices.Sort(l)
		return slices.Compact(l)
	}
	return Scope{IncludeLabels: norm(s.IncludeLabels), ExcludeLabels: norm(s.ExcludeLabels), OS: s.OS}
}

// Empty reports whether the scope is every client.
func (s Scope) Empty() bool {
	return len(s.IncludeLabels) == 0 && len(s.ExcludeLabels) == 0 && s.OS == ""
}

// Encode is the scope as a hunt records it ("" for every client).
func (s Scope) Encode() string {
	s = s.canonical()
	if s.Empty() {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// DecodeScope reads a hunt's recorded scope.
func DecodeScope(text string) (Scope, error) {
	var s Scope
	if text == "" {
		return s, nil
	}
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return s, fmt.Errorf("hunt scope %q: %w", text, err)
	}
	return s, nil
}

// DescribeScope says which clients a hunt with this recorded scope was
// limited to, for the tab and status ("" : every client, or a scope that
// cannot be read).
func DescribeScope(recorded string) string {
	s, err := DecodeScope(recorded)
	if err != nil || s.Empty() {
		return ""
	}
	return s.String()
}

// String says which clients a hunt searched, for the tab and status.
func (s Scope) String() string {
	var parts []string
	if len(s.IncludeLabels) > 0 {
		parts = append(parts, "only clients labelled "+strings.Join(s.IncludeLabels, " or "))
	}
	if len(s.ExcludeLabels) > 0 {
		parts = append(parts, "never clients labelled "+strings.Join(s.ExcludeLabels, " or "))
	}
	if s.OS != "" {
		parts = append(parts, "only "+s.OS+" clients")
	}
	if len(parts) == 0 {
		return "every client"
	}
	return strings.Join(parts, "; ")
}
