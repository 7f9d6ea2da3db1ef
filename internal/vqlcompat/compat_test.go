package vqlcompat

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/velohunt/velohunt/templates"
)

func loadTable(t *testing.T) *Table {
	t.Helper()
	tab, err := LoadTable("releases.json")
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// knownFindings are calls in the current artifacts that an older
// supported release lacks and that are not fixed yet (see the README,
// "Supported Velociraptor clients"). Each must still be found: remove an
// entry once its artifact is fixed. Anything not listed fails the test.
var knownFindings = []string{
	// ip(parse=) first appears in 0.73; 0.72 clients canonicalize no
	// address, so Network finds nothing there. No simple VQL rewrite
	// gives the same canonical form on 0.72.
	"Custom.Velohunt.Network: function ip(parse=) missing in v0.72",
}

// short drops where a finding is: the known list names what and which
// releases, not lines that move with every edit.
func short(f Finding) string {
	f.Lines = nil
	s := f.String()
	return strings.Replace(s, " at : ", " ", 1)
}

// TestArtifactsAgainstSupportedReleases is the compatibility check: every
// call and named argument of every artifact must exist in every supported
// release (releases.json), unless guarded with velohunt:needs.
func TestArtifactsAgainstSupportedReleases(t *testing.T) {
	tab := loadTable(t)
	arts, err := templates.Artifacts("")
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) == 0 {
		t.Fatal("no artifacts")
	}
	var got []string
	for name, text := range arts {
		fs, err := tab.Check(text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range fs {
			if slices.Contains(knownFindings, short(f)) {
				t.Logf("known: %s", f)
				got = append(got, short(f))
				continue
			}
			t.Errorf("%s", f)
		}
	}
	for _, k := range knownFindings {
		if !slices.Contains(got, k) {
			t.Errorf("known finding no longer found, remove it from knownFindings: %s", k)
		}
	}
}

const brokenArtifact = `name: Custom.Test.Broken
type: CLIENT
parameters:
  - name: Files
    type: json_array
  - name: Pick
sources:
  - precondition: SELECT OS FROM info() WHERE OS = 'linux'
    query: |
      -- A local function is not a built-in: its arguments are its own.
      LET HashOf(OSPath, Size) = hash(path=OSPath, max_size=Size)
      LET Stored = SELECT * FROM glob(globs=Files)
      SELECT HashOf(OSPath=OSPath, Size=1), Pick(x=1),
             format(format="%v max(0, 1) hash(path=x, max_size=1)", args=[1]),
             hash(path=OSPath,
                  max_size=1)
      FROM Stored
`

// The check must fail on a call that 0.74.5 does not know, naming the
// artifact, the call, the argument and the releases.
func TestCheckFindsUnknownArgument(t *testing.T) {
	tab := loadTable(t)
	fs, err := tab.Check(brokenArtifact)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 {
		t.Fatalf("want exactly the hash(max_size=) finding, got %v", fs)
	}
	f := fs[0]
	if f.Artifact != "Custom.Test.Broken" || f.Kind != Function || f.Call != "hash" || f.Arg != "max_size" {
		t.Fatalf("wrong finding: %+v", f)
	}
	if !slices.Contains(f.Releases, "v0.74.5") || slices.Contains(f.Releases, "v0.75.6") ||
		slices.Contains(f.Releases, "v0.77.2") || !slices.Contains(f.Releases, "v0.72") {
		t.Fatalf("wrong releases: %v", f.Releases)
	}
	// Both lines of hash(): the LET body and the multi-line call.
	if want := []string{"sources[0].query:2", "sources[0].query:6"}; !reflect.DeepEqual(f.Lines, want) {
		t.Fatalf("lines %v, want %v", f.Lines, want)
	}
	msg := f.String()
	for _, want := range []string{"Custom.Test.Broken", "hash(max_size=)", "v0.74.5"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
}

// A call guarded on the client's version may say from which release it
// is checked; naming a release the table does not hold is an error.
func TestCheckNeedsAnnotation(t *testing.T) {
	tab := loadTable(t)
	guarded := `name: Custom.Test.Guarded
sources:
  - query: |
      SELECT if(condition=version(function="hash") >= 3,
        then=hash(path="/etc/hosts", max_size=1), -- velohunt:needs v0.75.5
        else=hash(path="/etc/hosts")) AS H FROM scope()
`
	fs, err := tab.Check(guarded)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Call == "hash" {
			t.Fatalf("guarded call reported: %v", f)
		}
	}
	bad := strings.Replace(guarded, "v0.75.5", "v9.9", 1)
	fs, err = tab.Check(bad)
	if err != nil {
		t.Fatal(err)
	}
	reported := false
	for _, f := range fs {
		reported = reported || f.Call == "hash" && strings.Contains(f.String(), `"v9.9"`)
	}
	if !reported {
		t.Fatalf("unknown release in velohunt:needs not reported: %v", fs)
	}
}

// Plugins and functions are separate: info() is both, stat() a plugin
// before it was also a function; a name the table was not built for asks
// for regeneration; a LET name or parameter is never checked.
func TestCheckKinds(t *testing.T) {
	tab := loadTable(t)
	art := `name: Custom.Test.Kinds
parameters:
  - name: Param
sources:
  - query: |
      LET Local = SELECT * FROM info()
      SELECT info(), stat(filename="/"), no_such_builtin(x=1), Param(y=1), Local(z=1)
      FROM stat(filename="/")
`
	fs, err := tab.Check(art)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		if f.Call == "info" {
			// The function came in 0.77.1; the plugin was always there.
			if f.Kind != Function || !slices.Contains(f.Releases, "v0.76.7") || slices.Contains(f.Releases, "v0.77.1") {
				t.Fatalf("info(): %v", f)
			}
			continue
		}
		got = append(got, short(f))
	}
	sort.Strings(got)
	want := []string{
		"Custom.Test.Kinds: function no_such_builtin() not in the table: regenerate it (go generate in internal/vqlcompat)",
		"Custom.Test.Kinds: function stat() missing in v0.72",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParse(t *testing.T) {
	src := `LET F(a) = lowcase(string=a)   -- ignored: upcase(string=1)
/* block: glob(globs=x) */
SELECT F(a=1), dict(A=1, B=x = 2, C=y =~ "z"), format(format='%v', args=[if(condition=TRUE, then=1)]),
  x.y(q=1), "str(str=1)", '''raw(r=1)''', get(item=a, field="b")
FROM foreach(row={ SELECT * FROM chain(a={ SELECT 1 FROM scope() }) }, query={ SELECT 1 FROM info() })
WHERE NOT (a) AND x IN (1, 2)`
	calls, lets, err := Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(lets, []string{"F"}) {
		t.Fatalf("lets %v", lets)
	}
	var got []string
	for _, c := range calls {
		got = append(got, string(c.Kind)+" "+c.Name+"("+strings.Join(c.Args, ",")+")")
	}
	want := []string{
		"function lowcase(string)",
		"function F(a)",
		"function dict(A,B,C)",
		"function format(format,args)",
		"function if(condition,then)",
		"function get(item,field)",
		"plugin foreach(row,query)",
		"plugin chain(a)",
		"plugin scope()",
		"plugin info()",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := Parse("SELECT hash(path=x FROM scope()"); err == nil {
		t.Fatal("unclosed call not reported")
	}
	if _, _, err := Parse("SELECT 'x FROM scope()"); err == nil {
		t.Fatal("unterminated string not reported")
	}
}

// The table covers the supported range, oldest first, with sorted facts.
func TestTableShape(t *testing.T) {
	tab := loadTable(t)
	tags := tab.Tags()
	if tags[0] != "v0.72" || tags[len(tags)-1] != "v0.77.2" {
		t.Fatalf("range %s..%s, want v0.72..v0.77.2", tags[0], tags[len(tags)-1])
	}
	for _, need := range []string{"v0.74.5", "v0.75.6", "v0.76.4", "v0.77.1"} {
		if !slices.Contains(tags, need) {
			t.Fatalf("%s missing", need)
		}
	}
	if !sort.StringsAreSorted(tab.Called) {
		t.Fatal("called not sorted")
	}
	for _, r := range tab.Releases {
		for _, m := range []map[string][]string{r.Functions, r.Plugins} {
			for n, a := range m {
				if !sort.StringsAreSorted(a) {
					t.Fatalf("%v %s: arguments not sorted", r.Tags, n)
				}
			}
		}
	}
}

// Ensure client versions find their release of the table, and that the
// others say why they were not checked.
func TestPlace(t *testing.T) {
	tab, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		version, release, why, below, above string
	}{
		{"0.77.2", "v0.77.2", "", "", ""},
		{"0.74.5", "v0.74.5", "", "", ""},
		{"0.74.1", "0.74.1", "", "", ""},
		{"0.72.0", "v0.72", "", "", ""},
		{"0.72-rc1", "v0.72", "", "", ""},
		{"v0.76.4", "v0.76.4", "", "", ""},
		{"0.77.2-dev", "v0.77.2", "", "", ""},
		{"0.76.0", "", "not a release velohunt was checked against (it lies between v0.75.7 and v0.76.2)", "v0.75.7", "v0.76.2"},
		{"0.72.4", "", "not a release velohunt was checked against (it lies between v0.72 and v0.73)", "v0.72", "v0.73"},
		{"0.7.0", "", "older than v0.72, the oldest release velohunt supports", "", ""},
		{"0.78.0", "", "newer than v0.77.2, the newest release velohunt was checked against", "", ""},
		{"", "", "no version known (the client has not been interrogated yet)", "", ""},
		{"latest", "", "not a Velociraptor version number", "", ""},
		{"0.77.2 \x1b[31m", "", "not a Velociraptor version number", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			p := tab.Place(tt.version)
			if p.Release != tt.release || p.Why != tt.why || p.Below != tt.below || p.Above != tt.above {
				t.Fatalf("Place(%q) = %+v, want %+v", tt.version, p, tt)
			}
		})
	}
}
