package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCLIDoc keeps docs/cli.md equal to what the command tree generates;
// STRATA_UPDATE_DOCS=1 rewrites it.
func TestCLIDoc(t *testing.T) {
	p := filepath.Join("..", "..", "docs", "cli.md")
	want := cliMarkdown(rootCommand())
	if os.Getenv("STRATA_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("docs/cli.md is out of date with the commands' flags: run STRATA_UPDATE_DOCS=1 go test ./cmd/strata -run TestCLIDoc")
	}
}
