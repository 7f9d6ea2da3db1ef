package render_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/velohunt/velohunt/internal/render"
	"github.com/velohunt/velohunt/internal/render/rendertest"
	"github.com/velohunt/velohunt/templates"
)

func mustRenderer(t testing.TB) *render.Renderer {
	t.Helper()
	files, err := templates.IRIS("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.New(files)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkText(t *testing.T, what, s string, multiline bool) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s: invalid UTF-8", what)
	}
	for _, r := range s {
		if (unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t'))) || unicode.Is(unicode.Cf, r) {
			t.Fatalf("%s: control or format character %U", what, r)
		}
	}
}

func TestHostileEndpointData(t *testing.T) {
	r := mustRenderer(t)
	for i, h := range rendertest.Hostile {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			e := render.Event{IOCType: "filename", IOCValue: h, ClientID: "C.1", Hostname: h, FQDN: h, OS: "windows",
				LastIP: h, Source: h, Evidence: h, When: time.Now(), HuntID: "H.1", Server: "main"}
			title, err := r.EventTitle(e)
			if err != nil {
				t.Fatal(err)
			}
			checkText(t, "title", title, false)
			if n := utf8.RuneCountInString(title); n > render.MaxTitle+1 {
				t.Fatalf("title has %d runes", n)
			}
			content, err := r.EventContent(e)
			if err != nil {
				t.Fatal(err)
			}
			checkText(t, "content", content, true)
			// Outside the code blocks only velohunt's own words remain.
			outside := rendertest.OutsideCode(content)
			if len(outside) > 2000 {
				t.Fatalf("%d bytes of text outside code blocks", len(outside))
			}
			for _, bad := range append(rendertest.Dangerous, "'") {
				if strings.Contains(outside, bad) {
					t.Fatalf("hostile text %q outside a code block:\n%s", bad, render.Clip(outside, 600))
				}
			}
			if len(content) > render.MaxField*4 {
				t.Fatalf("content is %d bytes", len(content))
			}
			raw := render.Raw([]byte(h))
			if !utf8.ValidString(raw) || len(raw) > render.MaxRaw+200 {
				t.Fatalf("raw: valid=%v len=%d", utf8.ValidString(raw), len(raw))
			}
			fields, err := r.TabFields(render.Tab{Status: "HIT " + h, HitCount: 1, HostCount: 1,
				Hunts: []render.TabHunt{{VRHuntID: "H.1", Artifact: h, State: "running", LastError: h, URL: h, Scope: h}},
				Hits:  []render.TabHit{{Host: h, When: h, Source: h, Evidence: h}}})
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range fields {
				checkText(t, name, v, true)
				if utf8.RuneCountInString(v) > render.MaxField+1 {
					t.Fatalf("field %s has %d runes", name, utf8.RuneCountInString(v))
				}
			}
		})
	}
}

func TestCodeBlockCannotBeClosed(t *testing.T) {
	for _, s := range []string{"a", "```", "x````y", "`````````"} {
		block := render.CodeBlock(s)
		lines := strings.Split(strings.TrimRight(block, "\n"), "\n")
		fence := strings.TrimSuffix(lines[0], "text")
		if lines[len(lines)-1] != fence {
			t.Fatalf("block of %q does not end with its fence", s)
		}
		for _, l := range lines[1 : len(lines)-1] {
			if strings.HasPrefix(strings.TrimSpace(l), fence) {
				t.Fatalf("data line %q could close the fence %q", l, fence)
			}
		}
	}
}

func TestTabTemplateHasTextFieldsOnly(t *testing.T) {
	for name, f := range render.TabTemplate() {
		if ty := f["type"]; ty != "input_string" && ty != "input_textfield" {
			t.Fatalf("field %s is %v: IRIS does not escape html fields and skips them on update", name, ty)
		}
	}
}

// TestAngleBracketsShown: IRIS's front end filters event titles and event
// content (fenced code included) as HTML, keeping <img> and eating other
// tags; velohunt shows the brackets of endpoint text as ‹ and ›, and keeps
// the exact row in event_raw.
func TestAngleBracketsShown(t *testing.T) {
	r := mustRenderer(t)
	name := `C:\Users\a\<img src=x onerror=alert(1)>.txt`
	e := render.Event{IOCType: "filename", IOCValue: "<b>.txt", ClientID: "C.1", Hostname: "<ws>", Source: "file",
		Evidence: name, When: time.Now()}
	title, err := r.EventTitle(e)
	if err != nil || strings.ContainsAny(title, "<>") || !strings.Contains(title, "‹b›.txt") || !strings.Contains(title, "‹ws›") {
		t.Fatalf("title %q err=%v", title, err)
	}
	content, err := r.EventContent(e)
	if err != nil || strings.ContainsAny(content, "<>") || !strings.Contains(content, `C:\Users\a\‹img src=x onerror=alert(1)›.txt`) {
		t.Fatalf("content %q err=%v", content, err)
	}
	if raw := render.Raw([]byte(`{"OSPath":"` + name + `"}`)); !strings.Contains(raw, name) {
		t.Fatalf("raw %q lost the exact name", raw)
	}
}

// Ensure JSON output carries no terminal control or invisible format
// character and decodes to exactly the values encoded.
func TestJSONInert(t *testing.T) {
	for i, h := range rendertest.Hostile[:len(rendertest.Hostile)-1] {
		in := map[string]string{"v": h}
		b, err := json.MarshalIndent(in, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out := render.JSON(b)
		checkText(t, fmt.Sprintf("hostile %d", i), string(out), true)
		var back map[string]string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("hostile %d: %v\n%s", i, err, out)
		}
		var want map[string]string
		json.Unmarshal(b, &want) // invalid UTF-8 decodes as U+FFFD either way
		if back["v"] != want["v"] {
			t.Fatalf("hostile %d: decodes to %q, want %q", i, back["v"], want["v"])
		}
	}
}

// TestTabHuntScope: a hunt limited to some clients says so on its line.
func TestTabHuntScope(t *testing.T) {
	r := mustRenderer(t)
	fields, err := r.TabFields(render.Tab{Status: "hunting", Hunts: []render.TabHunt{
		{VRHuntID: "H.1", Artifact: "Custom.Velohunt.File", State: "running", Scope: "never clients labelled velohunt-exclude"},
		{VRHuntID: "H.2", Artifact: "Custom.Velohunt.File", State: "running"}}})
	if err != nil {
		t.Fatal(err)
	}
	hunts := fields[render.FieldHunts]
	if strings.Count(hunts, "\n  on never clients labelled velohunt-exclude") != 1 {
		t.Fatalf("hunts field:\n%s", hunts)
	}
}
