package plot

import (
	"bytes"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
)

// IndexEntry is one picture on the index page.
type IndexEntry struct {
	// Topology groups entries under a heading, such as "headless service".
	Topology string
	// Scenario is the picture's own heading, such as "rolling update".
	Scenario string
	// File is the picture's path relative to the index's directory (an
	// absolute path inside that directory is made relative).
	File string
	// Caption is a line of text under the picture; see Summary.
	Caption string
}

type indexGroup struct {
	Topology string
	Entries  []IndexEntry
}

const indexHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Load-balancing timelines</title>
<style>
body { font-family: sans-serif; margin: 1em 2em; }
figure { margin: 0 0 2em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #333; }
</style>
</head>
<body>
<h1>Load-balancing timelines</h1>
{{- range .}}
<section>
<h2>{{.Topology}}</h2>
{{- range .Entries}}
<figure>
<h3>{{.Scenario}}</h3>
<a href="{{.File}}"><img src="{{.File}}" alt="{{.Scenario}}"></a>
<figcaption>{{.Caption}}</figcaption>
</figure>
{{- end}}
</section>
{{- end}}
</body>
</html>
`

// Index writes index.html in dir, showing the entries' pictures grouped by
// topology (in the order topologies first appear in entries), each under a
// heading with its scenario and above its caption. Text is HTML-escaped.
func Index(dir string, entries []IndexEntry) error {
	tmpl, err := template.New("index").Parse(indexHTML)
	if err != nil {
		return fmt.Errorf("plot: index template: %w", err)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("plot: writing index in %s: %w", dir, err)
	}
	var groups []indexGroup
	at := map[string]int{}
	for _, e := range entries {
		if filepath.IsAbs(e.File) {
			rel, err := filepath.Rel(absDir, e.File)
			if err != nil {
				return fmt.Errorf("plot: writing index in %s: %s: %w", dir, e.File, err)
			}
			e.File = rel
		}
		e.File = filepath.ToSlash(e.File)
		i, ok := at[e.Topology]
		if !ok {
			i = len(groups)
			at[e.Topology] = i
			groups = append(groups, indexGroup{Topology: e.Topology})
		}
		groups[i].Entries = append(groups[i].Entries, e)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, groups); err != nil {
		return fmt.Errorf("plot: writing index in %s: %w", dir, err)
	}
	path := filepath.Join(dir, "index.html")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("plot: writing index: %w", err)
	}
	return nil
}
