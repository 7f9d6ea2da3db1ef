package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decode decodes YAML onto c, refusing unknown keys. yaml.v3 reports a
// wrong type or value by line only ("line 12: cannot unmarshal !!str
// `fifty` into float64"): the error names the key at that line instead.
func decode(data []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs []error
	for _, m := range msgs {
		errs = append(errs, keyError(&root, m))
	}
	return errors.Join(errs...)
}

var lineMsg = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// keyError turns "line N: problem" into a FieldError naming the key at
// line N, when one is found.
func keyError(root *yaml.Node, msg string) error {
	m := lineMsg.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("decode config: %s", msg)
	}
	line, _ := strconv.Atoi(m[1])
	problem := m[2]
	var cands []keyAt
	collectKeys(root, "", line, &cands)
	if len(cands) == 0 {
		return fmt.Errorf("decode config: %s", msg)
	}
	best := cands[0]
	for _, c := range cands {
		if c.value != nil && c.value.Kind == yaml.ScalarNode && best.value != nil && best.value.Kind != yaml.ScalarNode {
			best = c // a scalar is what fails to decode
		}
	}
	for _, c := range cands {
		if unknown, ok := strings.CutPrefix(problem, "field "); ok && strings.HasPrefix(unknown, c.name+" not found") {
			best = c
			break
		}
		if c.value != nil && c.value.Kind == yaml.ScalarNode &&
			(strings.Contains(problem, "`"+c.value.Value+"`") || strings.Contains(problem, strconv.Quote(c.value.Value))) {
			best = c
			break
		}
	}
	return &FieldError{Field: best.path, Err: fmt.Errorf("%s (line %d)", problem, line)}
}

// keyAt is a key (or a list item) found at a line.
type keyAt struct {
	path, name string
	value      *yaml.Node
}

// collectKeys lists, outermost first, the keys and list items at a line.
func collectKeys(n *yaml.Node, path string, line int, out *[]keyAt) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			collectKeys(c, path, line, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if k.Line == line {
				*out = append(*out, keyAt{path: p, name: k.Value, value: v})
			}
			collectKeys(v, p, line, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.Kind == yaml.ScalarNode && c.Line == line {
				*out = append(*out, keyAt{path: p, value: c})
			}
			collectKeys(c, p, line, out)
		}
	}
}
