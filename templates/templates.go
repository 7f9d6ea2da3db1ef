// Package templates embeds what users may read and adapt: velohunt's
// Velociraptor artifacts (artifacts/*.yaml). A directory given in the
// configuration (hunting.artifacts_dir) overrides the embedded copies.
package templates

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed artifacts/*.yaml iris/*.tmpl
var files embed.FS

// IRIS returns the text templates of the IOC tab, the timeline events and
// the evidence records (iris/*.tmpl) by file name: the embedded ones, each
// replaced by the file of the same name in dir when dir exists (a
// directory copied from an older velohunt lacks the newer templates).
func IRIS(dir string) (map[string]string, error) {
	out := map[string]string{}
	if err := readTemplates(files, "iris", out); err != nil {
		return nil, err
	}
	if dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			if err := readTemplates(os.DirFS(dir), ".", out); err != nil {
				return nil, err
			}
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("templates dir: %w", err)
		}
	}
	return out, nil
}

func readTemplates(fsys fs.FS, root string, out map[string]string) error {
	paths, err := fs.Glob(fsys, root+"/*.tmpl")
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("template %s: %w", p, err)
		}
		out[filepath.Base(p)] = string(b)
	}
	return nil
}

// Artifacts returns artifact definitions by name: from dir when it exists,
// else the embedded ones.
func Artifacts(dir string) (map[string]string, error) {
	var fsys fs.FS = files
	root := "artifacts"
	if dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			fsys, root = os.DirFS(dir), "."
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("artifacts dir: %w", err)
		}
	}
	paths, err := fs.Glob(fsys, filepath.ToSlash(filepath.Join(root, "*.yaml")))
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", p, err)
		}
		var head struct {
			Name string `yaml:"name"`
		}
		if err := yaml.Unmarshal(b, &head); err != nil || head.Name == "" {
			return nil, fmt.Errorf("artifact %s: not an artifact definition (no name)", p)
		}
		if want := strings.TrimSuffix(filepath.Base(p), ".yaml"); want != head.Name {
			return nil, fmt.Errorf("artifact %s: file name must be the artifact name %q", p, head.Name)
		}
		out[head.Name] = string(b)
	}
	return out, nil
}
