// Package doclinks checks the links between the repository's Markdown files, so that a
// moved or renamed document cannot leave a dangling link behind.
//
// Every relative link of every Markdown file the repository holds (git ls-files: tracked
// files and new ones not ignored; without git, a walk of the tree that skips .git, bin,
// out and e2e/out) must name a file or directory of the repository. A #fragment into a
// Markdown file, or into the same file, must name one of its headings, turned into an
// anchor the way GitHub does: lower case, every character but letters, digits, spaces,
// '-' and '_' dropped, spaces turned into '-', and "-1", "-2", ... added to repeated
// headings. Links with a scheme (http, https, mailto, ...) and anything inside fenced code
// blocks or inline code spans are not links to check.
//
// The check runs as part of go test ./... (TestRepositoryLinks).
package doclinks
