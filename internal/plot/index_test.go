package plot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"
)

func TestIndex(t *testing.T) {
	dir := t.TempDir()
	entries := []IndexEntry{
		{Topology: "headless", Scenario: "rolling update", File: "headless/rollout.svg", Caption: "1200 calls, 3 failed"},
		{Topology: "proxy", Scenario: "pod killed", File: filepath.Join(dir, "proxy", "kill.png"), Caption: "latency <1 ms & no failures"},
		{Topology: "headless", Scenario: "scale up", File: "headless/scale up.svg", Caption: "plain"},
	}
	if err := Index(dir, entries); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b)
	if strings.Contains(raw, "<1 ms") || !strings.Contains(raw, "&lt;1 ms &amp; no failures") {
		t.Errorf("caption not escaped:\n%s", raw)
	}
	doc, err := html.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("index.html does not parse: %v", err)
	}
	var srcs, headings, captions []string
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "img":
			for _, a := range n.Attr {
				if a.Key == "src" {
					srcs = append(srcs, a.Val)
				}
			}
		case "h2", "h3":
			headings = append(headings, n.Data+":"+innerText(n))
		case "figcaption":
			captions = append(captions, innerText(n))
		}
	}
	if diff := cmp.Diff([]string{"headless/rollout.svg", "headless/scale%20up.svg", "proxy/kill.png"}, srcs); diff != "" {
		t.Errorf("img src (-want +got):\n%s", diff)
	}
	wantHeadings := []string{"h2:headless", "h3:rolling update", "h3:scale up", "h2:proxy", "h3:pod killed"}
	if diff := cmp.Diff(wantHeadings, headings); diff != "" {
		t.Errorf("headings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1200 calls, 3 failed", "plain", "latency <1 ms & no failures"}, captions); diff != "" {
		t.Errorf("captions (-want +got):\n%s", diff)
	}
}

func TestIndexErrors(t *testing.T) {
	if err := Index(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("Index into a missing directory succeeded")
	}
}

func innerText(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}
