// Package render turns hunt results into the text velohunt writes into IRIS:
// the fields of the "Velociraptor hunt" tab and the title and content of
// timeline events, from the user-editable templates in templates/iris.
//
// Everything rendered here may carry endpoint data, which an attacker can
// control. The output is inert text: invalid UTF-8, control characters and
// bidirectional overrides are replaced, values are clipped, titles are one
// line, and in the Markdown event content every outside value sits inside a
// fenced code block whose fence is longer than any backtick run in the value
// (IRIS renders event_content as Markdown and allows links and images).
package render

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits on rendered text.
const (
	MaxTitle     = 300
	MaxCodeBlock = 4000
	MaxField     = 60000 // one tab field
	MaxRaw       = 64 << 10
)

// Renderer executes the IRIS templates.
type Renderer struct {
	t *template.Template
}

// Required template files.
var required = []string{"event_title.tmpl", "event_content.tmpl", "tab_hunts.tmpl", "tab_hits.tmpl",
	"collected_title.tmpl", "collected_content.tmpl", "evidence_description.tmpl"}

// New parses the templates (file name → text).
func New(files map[string]string) (*Renderer, error) {
	root := template.New("iris").Option("missingkey=error").Funcs(template.FuncMap{
		"clip":      func(s string, n int) string { return Clip(Text(s), n) },
		"codeblock": CodeBlock,
		"code":      func(s string) string { return "`" + Token(s) + "`" },
		"text":      Text,
		"line":      Line,
		"date":      Date,
		"orDash": func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		},
	})
	for _, name := range required {
		body, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("render: template %s is missing", name)
		}
		if _, err := root.New(name).Parse(body); err != nil {
			return nil, fmt.Errorf("render: %w", err)
		}
	}
	return &Renderer{t: root}, nil
}

func (r *Renderer) exec(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := r.t.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s: %w", name, err)
	}
	return b.String(), nil
}

// Text makes s safe to show as text: valid UTF-8, no control characters
// other than newline and tab, no bidirectional overrides or other invisible
// format characters.
func Text(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	clean := true
	for _, r := range s {
		if bad(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\r':
		case bad(r):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func bad(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

// Line is Text on one line: newlines and tabs become spaces.
func Line(s string) string {
	s = Text(s)
	return strings.Join(strings.Fields(strings.NewReplacer("\n", " ", "\t", " ").Replace(s)), " ")
}

// JSON makes encoded JSON inert on a terminal without changing what it
// decodes to: encoding/json escapes C0 controls but writes C1 controls
// (U+009B is a terminal's CSI), bidirectional overrides and other invisible
// format characters as they are; JSON writes them as \u escapes. In valid
// JSON such characters only occur inside strings, where an escape means the
// same.
func JSON(b []byte) []byte {
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return r >= 0x80 && bad(r) }) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + 16)
	for _, r := range strings.ToValidUTF8(string(b), "\ufffd") {
		if r < 0x80 || !bad(r) {
			out.WriteRune(r)
			continue
		}
		if r > 0xFFFF {
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&out, "\\u%04x\\u%04x", hi, lo)
			continue
		}
		fmt.Fprintf(&out, "\\u%04x", r)
	}
	return out.Bytes()
}

// Clip shortens s to at most n runes, marking the cut.
func Clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// Shown replaces the angle brackets of endpoint or IOC text with visible
// look-alikes, ‹ and ›, for the places IRIS filters as HTML before showing:
// event titles and event content, which its front end passes through
// js-xss's filterXSS (before Markdown, so fenced code too), keeping tags
// such as <img> and <a> and eating others (contract, "Observed on a real
// IRIS", item 13). Without this, a file named "<img src=x onerror=…>.txt"
// shows as a broken image and ".txt". The exact bytes stay in event_raw,
// which IRIS shows as raw text, and in the tab, whose fields IRIS escapes.
func Shown(s string) string {
	return strings.NewReplacer("<", "\u2039", ">", "\u203a").Replace(s)
}

// CodeBlock returns s as a fenced Markdown code block. The fence is longer
// than the longest run of backticks in s, so s cannot close it. Angle
// brackets are Shown.
func CodeBlock(s string) string {
	s = Shown(Clip(Text(s), MaxCodeBlock))
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + "text\n" + s + "\n" + fence + "\n"
}

// Date formats a time for people, in UTC.
func Date(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// IRISDate formats a time for IRIS's event_date: fraction, no offset (the
// offset goes in event_tz, always "+00:00" here).
func IRISDate(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000")
}
