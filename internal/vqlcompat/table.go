package vqlcompat

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Markers in an argument list of the table.
const (
	// FreeForm: the callable takes any named argument (besides those
	// listed), like chain() or dict().
	FreeForm = "*"
	// Unknown: the generator could not tell which arguments the callable
	// takes; a call with named arguments is reported, never assumed fine.
	Unknown = "?"
)

// Release holds the facts of one or more consecutive Velociraptor releases
// whose facts are identical: name -> sorted named arguments.
type Release struct {
	Tags      []string            `json:"tags"`
	Functions map[string][]string `json:"functions"`
	Plugins   map[string][]string `json:"plugins"`
}

// Table is the committed data file: the supported releases, oldest first.
type Table struct {
	Note string `json:"note"`
	// Called lists the names (function and plugin) the table was built for:
	// a call of any other name means the table must be regenerated.
	Called   []string  `json:"called"`
	Releases []Release `json:"releases"`
}

// LoadTable reads the table from a file.
func LoadTable(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(t.Releases) == 0 {
		return nil, fmt.Errorf("%s: no releases", path)
	}
	return &t, nil
}

// Tags returns every release tag of the table, oldest first.
func (t *Table) Tags() []string {
	var out []string
	for _, r := range t.Releases {
		out = append(out, r.Tags...)
	}
	return out
}

func (r *Release) lookup(k Kind, name string) ([]string, bool) {
	m := r.Functions
	if k == Plugin {
		m = r.Plugins
	}
	a, ok := m[name]
	return a, ok
}

// Finding is a call or named argument that some supported release lacks.
type Finding struct {
	Artifact string
	Kind     Kind
	Call     string
	Arg      string   // empty when the call itself is the problem
	Releases []string // the releases that lack it (empty: see Problem)
	Problem  string   // set when it is not about releases
	Lines    []string // where: "sources[0].query:12"
}

func (f Finding) String() string {
	what := fmt.Sprintf("%s %s()", f.Kind, f.Call)
	if f.Arg != "" {
		what = fmt.Sprintf("%s %s(%s=)", f.Kind, f.Call, f.Arg)
	}
	msg := f.Problem
	if msg == "" {
		msg = "missing in " + strings.Join(f.Releases, ", ")
	}
	return fmt.Sprintf("%s: %s at %s: %s", f.Artifact, what, strings.Join(f.Lines, ", "), msg)
}

type artifactDef struct {
	Name         string `yaml:"name"`
	Precondition string `yaml:"precondition"`
	Export       string `yaml:"export"`
	Parameters   []struct {
		Name string `yaml:"name"`
	} `yaml:"parameters"`
	Sources []struct {
		Precondition string `yaml:"precondition"`
		Query        string `yaml:"query"`
	} `yaml:"sources"`
}

// LocatedCall is a call in an artifact, with where it is.
type LocatedCall struct {
	Call
	Where string // "sources[0].query:12"
}

// Calls returns the calls of built-in functions and plugins in an
// artifact definition (YAML): those of its precondition, export and
// sources' preconditions and queries, without calls of its parameters and
// of the names it defines with LET.
func Calls(artifactYAML string) ([]LocatedCall, error) {
	_, calls, err := artifactCalls(artifactYAML)
	return calls, err
}

func artifactCalls(artifactYAML string) (string, []LocatedCall, error) {
	var a artifactDef
	if err := yaml.Unmarshal([]byte(artifactYAML), &a); err != nil {
		return "", nil, err
	}
	type text struct{ where, vql string }
	texts := []text{{"precondition", a.Precondition}, {"export", a.Export}}
	for i, s := range a.Sources {
		texts = append(texts,
			text{fmt.Sprintf("sources[%d].precondition", i), s.Precondition},
			text{fmt.Sprintf("sources[%d].query", i), s.Query})
	}
	local := map[string]bool{}
	for _, p := range a.Parameters {
		local[p.Name] = true
	}
	var all []LocatedCall
	for _, tx := range texts {
		if strings.TrimSpace(tx.vql) == "" {
			continue
		}
		cs, lets, err := Parse(tx.vql)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %s: %w", a.Name, tx.where, err)
		}
		for _, l := range lets {
			local[l] = true
		}
		for _, c := range cs {
			all = append(all, LocatedCall{c, fmt.Sprintf("%s:%d", tx.where, c.Line)})
		}
	}
	var calls []LocatedCall
	for _, c := range all {
		if !local[c.Name] {
			calls = append(calls, c)
		}
	}
	return a.Name, calls, nil
}

// Check scans an artifact definition (YAML) and returns what a supported
// release lacks. Calls of the artifact's parameters and of names it
// defines with LET are not checked; a call on a line carrying
// "-- velohunt:needs <release>" is checked only from that release on.
func (t *Table) Check(artifactYAML string) ([]Finding, error) {
	name, calls, err := artifactCalls(artifactYAML)
	if err != nil {
		return nil, err
	}

	type key struct {
		kind              Kind
		call, arg, needed string
	}
	found := map[key]*Finding{}
	var order []key
	add := func(k key, where string, tags []string, problem string) {
		f := found[k]
		if f == nil {
			f = &Finding{Artifact: name, Kind: k.kind, Call: k.call, Arg: k.arg, Problem: problem}
			found[k] = f
			order = append(order, k)
		}
		if !slices.Contains(f.Lines, where) {
			f.Lines = append(f.Lines, where)
		}
		for _, tag := range tags {
			if !slices.Contains(f.Releases, tag) {
				f.Releases = append(f.Releases, tag)
			}
		}
	}
	for _, c := range calls {
		where := c.Where
		if !slices.Contains(t.Called, c.Name) {
			add(key{c.Kind, c.Name, "", "table"}, where, nil,
				"not in the table: regenerate it (go generate in internal/vqlcompat)")
			continue
		}
		from := 0
		if c.Needs != "" {
			from = -1
			for i, r := range t.Releases {
				if slices.Contains(r.Tags, c.Needs) {
					from = i
				}
			}
			if from < 0 {
				add(key{c.Kind, c.Name, "", "needs"}, where, nil,
					fmt.Sprintf("velohunt:needs names %q, not a release of the table", c.Needs))
				continue
			}
		}
		for _, r := range t.Releases[from:] {
			args, ok := r.lookup(c.Kind, c.Name)
			if !ok {
				add(key{c.Kind, c.Name, "", ""}, where, r.Tags, "")
				continue
			}
			if slices.Contains(args, FreeForm) {
				continue
			}
			for _, arg := range c.Args {
				switch {
				case slices.Contains(args, Unknown):
					add(key{c.Kind, c.Name, arg, "unknown"}, where, nil,
						"the table does not know this callable's arguments (see gen's report)")
				case !slices.Contains(args, arg):
					add(key{c.Kind, c.Name, arg, ""}, where, r.Tags, "")
				}
			}
		}
	}
	out := make([]Finding, 0, len(order))
	for _, k := range order {
		out = append(out, *found[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Call != out[j].Call {
			return out[i].Call < out[j].Call
		}
		return out[i].Arg < out[j].Arg
	})
	return out, nil
}
