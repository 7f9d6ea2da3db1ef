package vqlcompat

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
)

//go:embed releases.json
var releasesJSON []byte

var embedded = sync.OnceValues(func() (*Table, error) {
	var t Table
	if err := json.Unmarshal(releasesJSON, &t); err != nil {
		return nil, fmt.Errorf("vqlcompat: releases.json: %w", err)
	}
	if len(t.Releases) == 0 {
		return nil, fmt.Errorf("vqlcompat: releases.json: no releases")
	}
	return &t, nil
})

// Embedded returns the table built into velohunt (releases.json). Callers
// must not change it.
func Embedded() (*Table, error) { return embedded() }

// version is a release number; a pre-release or build suffix is dropped.
type version [3]int

// versionRe reads "0.77.2", "v0.72", "0.72-rc1", "0.77.2-dev": major,
// minor, an optional patch and an optional suffix.
var versionRe = regexp.MustCompile(`^v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?(?:[-+~][0-9A-Za-z.+~-]{0,40})?$`)

func parseVersion(s string) (version, bool) {
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return version{}, false
	}
	var v version
	for i, p := range m[1:4] {
		if p != "" {
			v[i], _ = strconv.Atoi(p)
		}
	}
	return v, true
}

func (v version) compare(w version) int { return slices.Compare(v[:], w[:]) }

// Place says where a client's version string falls among the releases of
// the table.
type Place struct {
	// Release is the table's tag of the client's release (same major,
	// minor and patch; a suffix such as -rc1 or -dev is ignored), "" when
	// the table has none.
	Release string
	// Why says, when Release is "", why the version was not checked.
	Why string
	// Below and Above are the table's tags on each side of a version that
	// falls between two of them.
	Below, Above string
}

// Place locates a client version ("0.74.5", as clients() reports it).
func (t *Table) Place(v string) Place {
	if v == "" {
		return Place{Why: "no version known (the client has not been interrogated yet)"}
	}
	cv, ok := parseVersion(v)
	if !ok {
		return Place{Why: "not a Velociraptor version number"}
	}
	tags := t.Tags()
	type tagged struct {
		tag string
		v   version
	}
	var list []tagged
	for _, tag := range tags {
		if tv, ok := parseVersion(tag); ok {
			list = append(list, tagged{tag, tv})
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].v.compare(list[j].v) < 0 })
	if len(list) == 0 {
		return Place{Why: "the table names no release"}
	}
	for _, x := range list {
		if x.v == cv {
			return Place{Release: x.tag}
		}
	}
	first, last := list[0], list[len(list)-1]
	switch {
	case cv.compare(first.v) < 0:
		return Place{Why: fmt.Sprintf("older than %s, the oldest release velohunt supports", first.tag)}
	case cv.compare(last.v) > 0:
		return Place{Why: fmt.Sprintf("newer than %s, the newest release velohunt was checked against", last.tag)}
	}
	i := sort.Search(len(list), func(i int) bool { return list[i].v.compare(cv) > 0 })
	return Place{Why: fmt.Sprintf("not a release velohunt was checked against (it lies between %s and %s)", list[i-1].tag, list[i].tag),
		Below: list[i-1].tag, Above: list[i].tag}
}

// CheckAll checks every artifact (name -> YAML) and returns the findings,
// by artifact name.
func (t *Table) CheckAll(artifacts map[string]string) ([]Finding, error) {
	names := make([]string, 0, len(artifacts))
	for n := range artifacts {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Finding
	for _, n := range names {
		fs, err := t.Check(artifacts[n])
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", n, err)
		}
		out = append(out, fs...)
	}
	return out, nil
}
