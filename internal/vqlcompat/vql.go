// Package vqlcompat checks velohunt's Velociraptor artifacts against the
// VQL functions and plugins, and their named arguments, of every supported
// Velociraptor client release.
//
// A client older than the server logs "Unexpected arg" (at the default log
// level) for a named argument it does not know, the flow still finishes,
// and the rows are silently missing. releases.json holds, per
// release, the names and arguments of the functions and plugins velohunt's
// artifacts call (facts only, read from Velociraptor's source by ./gen);
// the tests of this package scan every artifact's VQL and fail on a call
// or argument that a supported release lacks.
//
// Regenerate the table (after adding a call to an artifact, or for a new
// release) from local git mirrors of Velociraptor and vfilter:
//
//	cd internal/vqlcompat && go generate
//
// which runs
//
//go:generate go run ./gen -velociraptor /work/.mirror/Velocidex+velociraptor/repo -vfilter /work/.mirror/Velocidex+vfilter/repo -out releases.json
package vqlcompat

import (
	"fmt"
	"regexp"
	"strings"
)

// Kind says whether a name is called as a plugin (right after FROM) or as
// a function (anywhere else).
type Kind string

// The two kinds of callable.
const (
	Function Kind = "function"
	Plugin   Kind = "plugin"
)

// Call is one call of a function or plugin in VQL text.
type Call struct {
	Name string
	Kind Kind
	Args []string // named arguments, in order of use
	Line int      // 1-based line of the name in the text
	// Needs is the release named by a "-- velohunt:needs <release>"
	// comment on the call's line: the call is guarded (for example by
	// version(function="x")) and only checked from that release on.
	Needs string
}

type tokKind int

const (
	tIdent tokKind = iota
	tString
	tNumber
	tPunct
)

type token struct {
	kind tokKind
	text string
	line int
}

var needsRe = regexp.MustCompile(`velohunt:needs\s+(\S+)`)

// scan splits VQL into tokens, dropping comments and recording the
// release named by each "velohunt:needs" comment, by line.
func scan(src string) ([]token, map[int]string, error) {
	var toks []token
	needs := map[int]string{}
	line := 1
	i := 0
	comment := func(text string, at int) {
		if m := needsRe.FindStringSubmatch(text); m != nil {
			needs[at] = m[1]
		}
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "--") || strings.HasPrefix(src[i:], "//"):
			end := strings.IndexByte(src[i:], '\n')
			if end < 0 {
				end = len(src) - i
			}
			comment(src[i:i+end], line)
			i += end
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			text := src[i : i+2+end+2]
			comment(text, line)
			line += strings.Count(text, "\n")
			i += len(text)
		case strings.HasPrefix(src[i:], "'''"):
			end := strings.Index(src[i+3:], "'''")
			if end < 0 {
				return nil, nil, fmt.Errorf("line %d: unterminated string", line)
			}
			text := src[i : i+3+end+3]
			toks = append(toks, token{tString, text, line})
			line += strings.Count(text, "\n")
			i += len(text)
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && c != '`' {
					j++
				}
			}
			if j >= len(src) {
				return nil, nil, fmt.Errorf("line %d: unterminated string", line)
			}
			text := src[i : j+1]
			toks = append(toks, token{tString, text, line})
			line += strings.Count(text, "\n")
			i = j + 1
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], line})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(src) && (isIdentPart(src[j]) || src[j] == '.') {
				j++
			}
			toks = append(toks, token{tNumber, src[i:j], line})
			i = j
		default:
			toks = append(toks, token{tPunct, string(c), line})
			i++
		}
	}
	return toks, needs, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// keywords are VQL words that may stand before "(" without being calls.
var keywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true,
	"NOT": true, "IN": true, "LET": true, "AS": true, "LIMIT": true,
	"ORDER": true, "BY": true, "GROUP": true, "DESC": true, "EXPLAIN": true,
}

func isKeyword(s string) bool { return keywords[strings.ToUpper(s)] }

// Parse returns the calls in VQL text and the names it defines with LET
// (stored queries and local functions, which are called like built-ins).
func Parse(src string) (calls []Call, lets []string, err error) {
	toks, needs, err := scan(src)
	if err != nil {
		return nil, nil, err
	}
	isPunct := func(i int, s string) bool {
		return i >= 0 && i < len(toks) && toks[i].kind == tPunct && toks[i].text == s
	}
	for i, t := range toks {
		if t.kind != tIdent {
			continue
		}
		if strings.EqualFold(t.text, "LET") && i+1 < len(toks) && toks[i+1].kind == tIdent {
			lets = append(lets, toks[i+1].text)
			continue
		}
		if !isPunct(i+1, "(") || isKeyword(t.text) || isPunct(i-1, ".") {
			continue
		}
		if i > 0 && toks[i-1].kind == tIdent && strings.EqualFold(toks[i-1].text, "LET") {
			continue // LET Name(params) = ... defines, not calls
		}
		c := Call{Name: t.text, Kind: Function, Line: t.line, Needs: needs[t.line]}
		if i > 0 && toks[i-1].kind == tIdent && strings.EqualFold(toks[i-1].text, "FROM") {
			c.Kind = Plugin
		}
		// Named arguments: an identifier followed by "=" (not "==")
		// right after the opening parenthesis or a comma, at the call's
		// own depth.
		depth := 0
		for j := i + 1; j < len(toks); j++ {
			tj := toks[j]
			if tj.kind == tPunct {
				switch tj.text {
				case "(", "{", "[":
					depth++
				case ")", "}", "]":
					depth--
				}
				if depth == 0 {
					break
				}
				continue
			}
			if depth == 1 && tj.kind == tIdent && (isPunct(j-1, "(") || isPunct(j-1, ",")) &&
				isPunct(j+1, "=") && !isPunct(j+2, "=") && !isPunct(j+2, "~") {
				c.Args = append(c.Args, tj.text)
			}
		}
		if depth != 0 {
			return nil, nil, fmt.Errorf("line %d: %s( is not closed", t.line, t.text)
		}
		calls = append(calls, c)
	}
	return calls, lets, nil
}
