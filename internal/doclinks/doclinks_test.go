package doclinks

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRepositoryLinks checks every relative link of every Markdown file of the repository.
func TestRepositoryLinks(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := RepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ListFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files == 0 {
		t.Fatalf("no Markdown file found under %s", root)
	}
	for _, p := range rep.Problems {
		t.Errorf("broken link: %s", p)
	}
	t.Logf("%d Markdown files, %d relative links, %d broken", rep.Files, rep.Links, len(rep.Problems))
}

// TestCheckReportsBrokenLinks shows the check can fail: a missing file, a missing heading
// in another file and in the same file are reported; what is fine, or not a relative link,
// is not.
func TestCheckReportsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write(t, root, "go.mod", "module example.com/x\n")
	write(t, root, "docs/guide.md", strings.Join([]string{
		"# Guide",
		"",
		"## Adding a topology (or a scenario)",
		"",
		"## Flags",
		"",
		"## Flags",
		"",
		"Setext heading",
		"--------------",
		"",
		`<a id="custom-anchor"></a>`,
	}, "\n"))
	write(t, root, "docs/pic.svg", "<svg/>")
	write(t, root, "README.md", strings.Join([]string{
		"# Top",
		"",
		"[guide](docs/guide.md) and [its section](docs/guide.md#adding-a-topology-or-a-scenario),",
		"[the second Flags](docs/guide.md#flags-1), [setext](docs/guide.md#setext-heading),",
		"[custom](docs/guide.md#custom-anchor), [dir](docs), [root-relative](/docs/guide.md),",
		"![picture](docs/pic.svg \"a title\"), [web](https://example.com/missing.md), [mail](mailto:a@b.c),",
		"[up here](#top), `[code](missing-in-code.md)`, ``[double `code`](missing-too.md)``.",
		"",
		"[missing file](docs/missing.md) and [missing heading](docs/guide.md#no-such-heading)",
		"and [missing here](#nowhere) and ![missing picture](docs/missing.svg)",
		"and [escape](../outside.md).",
		"",
		"```sh",
		"echo '[fenced](docs/fenced-missing.md)'",
		"```",
		"",
		"[ref]: docs/missing-ref.md",
	}, "\n"))

	files, err := Walk(root)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Check(root, files)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rep.Problems {
		got = append(got, p.File+":"+p.Link)
	}
	want := []string{
		"README.md:docs/missing.md",
		"README.md:docs/guide.md#no-such-heading",
		"README.md:#nowhere",
		"README.md:docs/missing.svg",
		"README.md:../outside.md",
		"README.md:docs/missing-ref.md",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %q\nwant %q\n(all: %v)", got, want, rep.Problems)
	}
	if rep.Files != 2 {
		t.Errorf("read %d Markdown files, want 2", rep.Files)
	}
	for _, p := range rep.Problems {
		if p.Line == 0 || p.Reason == "" {
			t.Errorf("problem without line or reason: %+v", p)
		}
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"End-to-end suite (`make e2e`)":             "end-to-end-suite-make-e2e",
		"Troubleshooting with `greeter doctor`":     "troubleshooting-with-greeter-doctor",
		"Zero downtime and failover (measured)":     "zero-downtime-and-failover-measured",
		"TLS Secret (never committed)":              "tls-secret-never-committed",
		"What reaches a proxyless client, and what": "what-reaches-a-proxyless-client-and-what",
		"A & B":                      "a--b",
		"snake_case and **bold**":    "snake_case-and-bold",
		"[Linked](other.md) heading": "linked-heading",
		"Größe 2":                    "größe-2",
	} {
		if got := Slug(heading); got != want {
			t.Errorf("Slug(%q) = %q, want %q", heading, got, want)
		}
	}
}

func TestRepoRootWalksUp(t *testing.T) {
	root := t.TempDir()
	write(t, root, "go.mod", "module example.com/x\n")
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := RepoRoot(deep)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(root); got != root && got != want {
		t.Errorf("RepoRoot = %s, want %s", got, root)
	}
}

func TestWalkSkipsOutputs(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"README.md", "out/x.md", "e2e/out/y.md", "e2e/doc.md", "bin/z.md"} {
		write(t, root, f, "# x\n")
	}
	files, err := Walk(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"README.md", "e2e/doc.md"}; !slices.Equal(files, want) {
		t.Errorf("Walk = %q, want %q", files, want)
	}
}

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
