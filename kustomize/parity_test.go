package kustomize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// hello and goodbye are the same server template for two services: base/goodbye is
// base/hello with the names changed. A fix made to one and forgotten on the other is
// caught here, on the rendered objects and on the files (comments included).

// goodbyeAsHello rewrites goodbye's names into hello's: the app name (object names,
// labels, selectors, the container) and the gRPC service name (probes). These are the
// only differences by design; ports and env are the same for both.
var goodbyeAsHello = strings.NewReplacer("helloworld.Goodbye", "helloworld.Hello", "goodbye", "hello")

// TestHelloGoodbyeParity renders base/hello and base/goodbye and compares each goodbye
// object, names rewritten, with its hello counterpart.
func TestHelloGoodbyeParity(t *testing.T) {
	index := func(dir string, rename *strings.Replacer) map[string]runtime.Object {
		objs, err := render(dir)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]runtime.Object{}
		for _, o := range objs {
			obj := o.Obj
			if rename != nil {
				js, err := json.Marshal(obj)
				if err != nil {
					t.Fatal(err)
				}
				got, err := decodeStrict([]byte(rename.Replace(string(js))))
				if err != nil {
					t.Fatalf("%s, renamed: %v", o, err)
				}
				o, obj = got, got.Obj
			}
			m[o.String()] = obj
		}
		return m
	}
	hello := index("base/hello", nil)
	goodbye := index("base/goodbye", goodbyeAsHello)
	keys := func(m map[string]runtime.Object) []string {
		var k []string
		for name := range m {
			k = append(k, name)
		}
		slices.Sort(k)
		return k
	}
	if d := cmp.Diff(keys(hello), keys(goodbye)); d != "" {
		t.Errorf("base/hello and base/goodbye (names rewritten) have different objects (-hello +goodbye):\n%s", d)
	}
	// Compared as YAML lines: the diff reads like the manifests.
	lines := func(o runtime.Object) []string {
		y, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(y), "\n")
	}
	for name, h := range hello {
		if g, ok := goodbye[name]; ok {
			if d := cmp.Diff(lines(h), lines(g)); d != "" {
				t.Errorf("%s: base/goodbye differs from base/hello beyond the names (-hello +goodbye):\n%s", name, d)
			}
		}
	}
}

// TestHelloGoodbyeFilesAgree: the files of base/hello and base/goodbye, comments
// included, are the same text but for the names, so each reads on its own and neither
// explains less than the other.
func TestHelloGoodbyeFilesAgree(t *testing.T) {
	// Both names to one placeholder: a comment of goodbye's may mention hello (the
	// canary) and still say the same as hello's.
	norm := strings.NewReplacer("helloworld.Goodbye", "helloworld.APP", "helloworld.Hello", "helloworld.APP",
		"goodbye", "app", "hello", "app")
	files, err := filepath.Glob("base/hello/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in base/hello: %v", err)
	}
	other, _ := filepath.Glob("base/goodbye/*")
	if len(other) != len(files) {
		t.Errorf("base/hello has %d files, base/goodbye %d: they must have the same files", len(files), len(other))
	}
	for _, h := range files {
		g := filepath.Join("base/goodbye", filepath.Base(h))
		hb, err := os.ReadFile(h)
		if err != nil {
			t.Fatal(err)
		}
		gb, err := os.ReadFile(g)
		if err != nil {
			t.Errorf("%s has no counterpart: %v", h, err)
			continue
		}
		hl := strings.Split(norm.Replace(string(hb)), "\n")
		gl := strings.Split(norm.Replace(string(gb)), "\n")
		if d := cmp.Diff(hl, gl); d != "" {
			t.Errorf("%s and %s differ beyond the names hello/goodbye (-hello +goodbye):\n%s", h, g, d)
		}
	}
}
