// Package readme holds the test that follows the README's quick start on a
// fresh clone, so the two commands it promises keep working as it says.
package readme

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// quickStart returns the commands of the README's "Quick start" shell block
// with the comment beside each.
func quickStart(t *testing.T, readme string) (cmds, comments []string) {
	t.Helper()
	_, after, ok := strings.Cut(readme, "\n## Quick start\n")
	if !ok {
		t.Fatal("README has no '## Quick start' section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	if !ok {
		t.Fatal("README's quick start has no ```sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		cmd, comment, _ := strings.Cut(sc.Text(), "#")
		if cmd = strings.TrimSpace(cmd); cmd != "" {
			cmds = append(cmds, cmd)
			comments = append(comments, strings.TrimSpace(comment))
		}
	}
	return cmds, comments
}

// TestREADMEOnFreshClone clones the repository as committed, runs the
// README's demo command there exactly as written, with no STRATA_ variable
// set, and checks that it does what the README's comment says: a local
// repository in ./strata-demo, the bundled sample graph backed up,
// restored and compared. The test command cannot run itself; the test
// checks that it is what CI runs (.ci/run) and what it would run.
func TestREADMEOnFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: clones the repository and runs make demo (about 30 s)")
	}
	for _, tool := range []string{"git", "make", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout (an unpacked archive): nothing to clone")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds, comments := quickStart(t, string(readme))
	if len(cmds) != 2 || cmds[0] != "make demo" || cmds[1] != "make test" {
		t.Fatalf("README's quick start is %q, want the two commands make demo and make test", cmds)
	}
	if !strings.Contains(comments[0], "./strata-demo") || !strings.Contains(comments[0], "compare") {
		t.Fatalf("README says make demo does %q; this test checks a repository in ./strata-demo and a compare", comments[0])
	}

	clone := filepath.Join(t.TempDir(), "strata")
	run(t, root, 2*time.Minute, "git", "clone", "--quiet", root, clone)
	out := run(t, clone, 10*time.Minute, "sh", "-c", cmds[0])
	for _, want := range []string{
		"==> strata init",
		"==> strata backup --tier fast=",
		"==> strata restore latest",
		"restored tiers are identical to the sample",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("make demo printed no %q; output:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(clone, "strata-demo", "repo", "config")); err != nil {
		t.Errorf("no repository in ./strata-demo after make demo: %v", err)
	}
	for _, tier := range []string{"fast", "warm", "cold"} {
		if fi, err := os.Stat(filepath.Join(clone, "strata-demo", "restore", tier+".jsonl")); err != nil || fi.Size() == 0 {
			t.Errorf("tier %s not restored by make demo: %v", tier, err)
		}
	}

	// The test command: CI runs exactly it, and it runs the whole suite.
	ci, err := os.ReadFile(filepath.Join(clone, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(ci)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != cmds[1] {
		t.Errorf(".ci/run ends with %q, not the README's %q", last, cmds[1])
	}
	dry := run(t, clone, time.Minute, "make", "-n", "test")
	if !regexp.MustCompile(`(?m)go test .*\./\.\.\.`).MatchString(dry) {
		t.Errorf("make test would not run go test over ./...:\n%s", dry)
	}
}

// run runs name in dir without the caller's STRATA_ variables and returns
// its combined output, failing the test if it fails.
func run(t *testing.T, dir string, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}
