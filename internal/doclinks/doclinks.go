package doclinks

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Problem is one link that does not resolve.
type Problem struct {
	File   string // the Markdown file, relative to the root, with '/' separators
	Line   int    // 1-based
	Link   string // the destination as written
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Link, p.Reason)
}

// Report is the result of Check.
type Report struct {
	Files    int // Markdown files read
	Links    int // relative links checked
	Problems []Problem
}

// RepoRoot returns the nearest directory at or above dir that holds a go.mod.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// ListFiles returns the repository's files relative to root ('/' separators): what git
// ls-files lists as tracked, or new and not ignored, when root is a git work tree, else
// what Walk finds.
func ListFiles(root string) ([]string, error) {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return Walk(root)
	}
	var files []string
	for _, f := range bytes.Split(out, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// skipDirs are the directories Walk leaves out, relative to the root: git's own, and the
// build and test outputs .gitignore names.
var skipDirs = map[string]bool{".git": true, "bin": true, "out": true, "e2e/out": true}

// Walk lists the regular files under root ('/' separators, relative to root), leaving out
// skipDirs: the fallback of ListFiles where git is absent.
func Walk(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if skipDirs[rel] {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// IsMarkdown says whether name is a Markdown file.
func IsMarkdown(name string) bool {
	return strings.EqualFold(path.Ext(name), ".md")
}

// Check reads every Markdown file of files (relative to root, as ListFiles returns them)
// and reports each relative link whose target is not one of files (or a directory that
// holds one), or whose #fragment names no heading of its Markdown target.
func Check(root string, files []string) (Report, error) {
	c := &checker{root: root, files: map[string]bool{}, dirs: map[string]bool{}, anchors: map[string]map[string]bool{}}
	for _, f := range files {
		c.files[f] = true
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			c.dirs[d] = true
		}
	}
	var rep Report
	for _, f := range files {
		if !IsMarkdown(f) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // listed by git, deleted in the work tree
		}
		if err != nil {
			return rep, err
		}
		rep.Files++
		doc := parse(data)
		c.anchors[f] = doc.anchors
		for _, l := range doc.links {
			if reason, checked := c.resolve(f, l.dest); checked {
				rep.Links++
				if reason != "" {
					rep.Problems = append(rep.Problems, Problem{File: f, Line: l.line, Link: l.dest, Reason: reason})
				}
			}
		}
	}
	return rep, nil
}

type checker struct {
	root    string
	files   map[string]bool
	dirs    map[string]bool
	anchors map[string]map[string]bool // Markdown file → its anchors, read once
}

// scheme matches a destination with a URL scheme (http:, mailto:, ...).
var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// resolve checks the link dest of the Markdown file from. checked is false for what is not
// a relative link; reason is empty when it resolves.
func (c *checker) resolve(from, dest string) (reason string, checked bool) {
	if dest == "" || scheme.MatchString(dest) || strings.HasPrefix(dest, "//") {
		return "", false
	}
	target, fragment, _ := strings.Cut(dest, "#")
	target, _, _ = strings.Cut(target, "?")
	if t, err := url.PathUnescape(target); err == nil {
		target = t
	}
	if f, err := url.PathUnescape(fragment); err == nil {
		fragment = f
	}
	var rel string
	switch {
	case target == "":
		rel = from // #anchor in the same file
	case strings.HasPrefix(target, "/"):
		rel = path.Clean(strings.TrimPrefix(target, "/"))
	default:
		rel = path.Clean(path.Join(path.Dir(from), target))
	}
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "points outside the repository", true
	}
	isDir := rel == "." || c.dirs[rel]
	if !isDir && !c.files[rel] {
		if _, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(rel))); err == nil {
			return "target is not part of the repository (ignored or outside git)", true
		}
		return "no such file or directory", true
	}
	if fragment == "" {
		return "", true
	}
	if isDir {
		readme := path.Join(rel, "README.md")
		if !c.files[readme] {
			return "", true // a #fragment into a directory listing: nothing to check
		}
		rel = readme
	}
	if !IsMarkdown(rel) {
		return "", true // e.g. a line of a source file (#L10): not checked
	}
	anchors, err := c.anchorsOf(rel)
	if err != nil {
		return err.Error(), true
	}
	if !anchors[strings.ToLower(fragment)] {
		return fmt.Sprintf("no heading with anchor #%s in %s", fragment, rel), true
	}
	return "", true
}

func (c *checker) anchorsOf(rel string) (map[string]bool, error) {
	if a, ok := c.anchors[rel]; ok {
		return a, nil
	}
	data, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	a := parse(data).anchors
	c.anchors[rel] = a
	return a, nil
}

type link struct {
	line int
	dest string
}

type document struct {
	links   []link
	anchors map[string]bool
}

var (
	atxHeading    = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextLine    = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	fenceOpen     = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
	refDefinition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)`)
	htmlAttr      = regexp.MustCompile(`(?i)\b(href|src|id|name)\s*=\s*"([^"]*)"`)
	inlineLink    = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag       = regexp.MustCompile(`<[^>]+>`)
)

// parse finds the links and heading anchors of a Markdown document, outside fenced code
// blocks and inline code spans.
func parse(data []byte) document {
	doc := document{anchors: map[string]bool{}}
	seen := map[string]int{} // slug → times used, for GitHub's -1, -2 suffixes
	addHeading := func(text string) {
		slug := Slug(text)
		if n := seen[slug]; n > 0 {
			seen[slug] = n + 1
			slug = fmt.Sprintf("%s-%d", slug, n)
		} else {
			seen[slug] = 1
		}
		doc.anchors[slug] = true
	}
	var fence string // the opening fence while inside a code block
	prev := ""       // the previous line, if it could be a setext heading's text
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if fence != "" {
			t := strings.TrimSpace(line)
			if strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == "" {
				fence = ""
			}
			continue
		}
		if m := fenceOpen.FindStringSubmatch(line); m != nil {
			fence, prev = m[1], ""
			continue
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			addHeading(m[2])
			prev = ""
		} else if setextLine.MatchString(line) && prev != "" {
			addHeading(prev)
			prev = ""
			continue
		} else {
			prev = strings.TrimSpace(line)
			if strings.HasPrefix(prev, "|") || strings.HasPrefix(prev, ">") {
				prev = "" // a table row or a quote is no heading's text
			}
		}
		text := blankCodeSpans(line)
		for _, d := range destinations(text) {
			doc.links = append(doc.links, link{line: i + 1, dest: d})
		}
		if m := refDefinition.FindStringSubmatch(text); m != nil {
			doc.links = append(doc.links, link{line: i + 1, dest: strings.Trim(m[1], "<>")})
		}
		for _, m := range htmlAttr.FindAllStringSubmatch(text, -1) {
			switch strings.ToLower(m[1]) {
			case "href", "src":
				doc.links = append(doc.links, link{line: i + 1, dest: m[2]})
			default:
				doc.anchors[strings.ToLower(m[2])] = true
			}
		}
	}
	return doc
}

// destinations returns the destinations of the inline links and images of one line:
// whatever follows "](" up to the closing parenthesis, without an optional title.
func destinations(line string) []string {
	var out []string
	for {
		i := strings.Index(line, "](")
		if i < 0 {
			return out
		}
		rest := line[i+2:]
		rest = strings.TrimLeft(rest, " \t")
		var dest string
		if strings.HasPrefix(rest, "<") {
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				line = rest
				continue
			}
			dest, rest = rest[1:end], rest[end+1:]
		} else {
			depth, end := 0, len(rest)
		scan:
			for j, r := range rest {
				switch {
				case r == '(':
					depth++
				case r == ')' && depth == 0:
					end = j
					break scan
				case r == ')':
					depth--
				case r == ' ' || r == '\t':
					end = j
					break scan
				}
			}
			dest, rest = rest[:end], rest[end:]
		}
		out = append(out, dest)
		line = rest
	}
}

// blankCodeSpans replaces inline code spans (`...`, “...“), backticks included, with spaces,
// so that link syntax shown as code is not taken for a link.
func blankCodeSpans(line string) string {
	b := []byte(line)
	for i := 0; i < len(b); {
		if b[i] != '`' {
			i++
			continue
		}
		n := 0
		for i+n < len(b) && b[i+n] == '`' {
			n++
		}
		open := i + n
		closeAt := -1
		for j := open; j < len(b); {
			if b[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(b) && b[j+m] == '`' {
				m++
			}
			if m == n {
				closeAt = j
				break
			}
			j += m
		}
		if closeAt < 0 {
			i = open // no closing run: the backticks are literal
			continue
		}
		for k := i; k < closeAt+n; k++ {
			b[k] = ' '
		}
		i = closeAt + n
	}
	return string(b)
}

// Slug turns a heading's text into its anchor as GitHub does: links and images reduced to
// their text, HTML tags removed, lower case, every character but letters, marks, digits,
// connector punctuation ('_'), spaces and '-' dropped, each space turned into '-'.
func Slug(heading string) string {
	text := inlineLink.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ' || r == '-':
			b.WriteRune('-')
		case unicode.IsLetter(r), unicode.IsMark(r), unicode.IsDigit(r), unicode.IsNumber(r), unicode.In(r, unicode.Pc):
			b.WriteRune(r)
		}
	}
	return b.String()
}
