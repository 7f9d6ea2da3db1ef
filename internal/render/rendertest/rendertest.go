// Package rendertest holds what tests of IRIS output share: hostile endpoint
// data and a reader of Markdown that returns the text outside code.
package rendertest

import (
	"regexp"
	"strings"
)

// Hostile is endpoint data an attacker may control: HTML, Markdown links
// and images, fence breakers, control characters, bidi overrides, broken
// UTF-8 and a 10 MB value.
var Hostile = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	"[click](javascript:alert(1)) ![img](http://evil.example/x.png) www.evil.example",
	"```\n</pre><script>x</script>\n```",
	"````````````` many backticks",
	"line1\r\nline2\x00\x1b[31mred\x07",
	"\u202eexe.txt",
	"\u009b31mC1 CSI\u009b0m \U000e0041tag",
	"bad utf8 \xff\xfe\xc3",
	"' OR 1=1; --",
	strings.Repeat("A", 10<<20),
}

// Dangerous are substrings that must never appear outside code in
// rendered Markdown.
var Dangerous = []string{"<script", "<img", "](", "onerror", "javascript", "www.evil", "\u202e"}

var (
	openFence  = regexp.MustCompile("^(`{3,})")
	inlineCode = regexp.MustCompile("`[^`\n]*`")
)

// OutsideCode returns the Markdown text outside fenced code blocks and
// inline code spans.
func OutsideCode(md string) string {
	var out []string
	fence := ""
	for _, line := range strings.Split(md, "\n") {
		trim := strings.TrimSpace(line)
		if fence == "" {
			if m := openFence.FindString(trim); m != "" {
				fence = m
				continue
			}
			out = append(out, line)
		} else if trim == fence {
			fence = ""
		}
	}
	return inlineCode.ReplaceAllString(strings.Join(out, "\n"), "")
}
