package kustomize

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMenuListsEverything: the root kustomization.yaml is the menu of kustomize/, so every
// topology (overlays/<name>) and every component (components/..., nested ones included)
// has a line there, commented out or not, and every line names one that exists; every
// component has a README. The menu itself is rendered as one of the targets
// (render_test.go).
func TestMenuListsEverything(t *testing.T) {
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^(?:# )?- ((?:overlays|components)/\S+)`).FindAllStringSubmatch(string(data), -1) {
		listed[m[1]] = true
	}
	want := map[string]bool{}
	overlays, err := filepath.Glob("overlays/*/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range overlays {
		want[filepath.ToSlash(filepath.Dir(k))] = true
	}
	err = filepath.WalkDir("components", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			want[filepath.ToSlash(filepath.Dir(path))] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 8 {
		t.Fatalf("found %d overlays and components, fewer than the kit has: %v", len(want), want)
	}
	for dir := range want {
		if _, err := os.Stat(filepath.Join(dir, "README.md")); strings.HasPrefix(dir, "components/") && err != nil {
			t.Errorf("%s has no README.md: every component says what it does and what it needs", dir)
		}
		if !listed[dir] {
			t.Errorf("kustomization.yaml (the menu) has no line for %s: add \"# - %s  # what it does (what it needs)\"", dir, dir)
		}
	}
	for dir := range listed {
		if !want[dir] {
			t.Errorf("kustomization.yaml (the menu) lists %s, which is not an overlay or a component", dir)
		}
	}
	// One line each, with what it does.
	for _, line := range strings.Split(string(data), "\n") {
		if m := regexp.MustCompile(`^(?:# )?- ((?:overlays|components)/\S+)(.*)$`).FindStringSubmatch(line); m != nil && !strings.Contains(m[2], "# ") {
			t.Errorf("kustomization.yaml (the menu): %s has no comment saying what it does", m[1])
		}
	}
}
