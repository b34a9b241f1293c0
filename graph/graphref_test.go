package graph

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-backup/strata/graphgen"
)

// graphref returns the command that runs ../shared/tools/graphref.py
// (relative to the module root), or skips the test.
func graphref(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: cannot compare with graphref.py")
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	script := filepath.Join(dir, "..", "shared", "tools", "graphref.py")
	if _, err := os.Stat(script); err != nil {
		t.Skipf("graphref.py not available (%v): cannot compare with the reference", err)
	}
	return func(args ...string) (string, error) {
		cmd := exec.Command(py, append([]string{script}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
}

// writeCanonical canonicalises and sorts a tier file with this package, with
// a small memory limit so that the sort spills.
func writeCanonical(t *testing.T, in, out, tier string) {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := NewSorter(64<<10, t.TempDir())
	r := NewReader(f, tier)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(rec, r.Line()); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Sort()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteLines(w, it); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGraphrefCanonical checks that canonical, sorted tiers are byte for byte
// what `graphref.py state` writes for a generated graph, for the tricky
// values of canonicalCases and for random awkward records.
func TestGraphrefCanonical(t *testing.T) {
	run := graphref(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if _, err := graphgen.WriteDir(in, graphgen.Options{Nodes: 3000, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	// graphref state refuses an id defined twice, so keep one line per key.
	seen := map[string]bool{}
	for _, tier := range graphgen.Tiers {
		data, err := os.ReadFile(filepath.Join(in, tier+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range readAll(t, string(data), tier) {
			seen[r.Kind.String()+" "+r.ID] = true
		}
	}
	var tricky []string
	for i, tc := range canonicalCases {
		tricky = append(tricky, `{"properties":{"v":`+tc.in+`,"name":"`+tc.name+`"},"id":"tricky`+strconv.Itoa(i)+`","type":"node"}`)
	}
	g := newRandGen(99)
	for range 3000 {
		line := g.line(5000, 5000)
		r := readAll(t, line, "random")[0]
		if key := r.Kind.String() + " " + r.ID; !seen[key] {
			seen[key] = true
			tricky = append(tricky, line)
		}
	}
	if err := os.WriteFile(filepath.Join(in, "tricky.jsonl"), []byte(strings.Join(tricky, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	want, ours := filepath.Join(dir, "want"), filepath.Join(dir, "ours")
	if err := os.Mkdir(ours, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"state", "--out", want}
	for _, tier := range append(graphgen.Tiers, "tricky") {
		src := filepath.Join(in, tier+".jsonl")
		args = append(args, "--tier", tier+"="+src)
		writeCanonical(t, src, filepath.Join(ours, tier+".jsonl"), tier)
	}
	if out, err := run(args...); err != nil {
		t.Fatalf("graphref state: %v\n%s", err, out)
	}
	for _, tier := range append(graphgen.Tiers, "tricky") {
		a, err := os.ReadFile(filepath.Join(want, tier+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(ours, tier+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a, b) {
			continue
		}
		la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
		for i := 0; i < len(la) && i < len(lb); i++ {
			if la[i] != lb[i] {
				t.Fatalf("tier %s line %d differs:\ngraphref %s\nours     %s", tier, i+1, la[i], lb[i])
			}
		}
		t.Fatalf("tier %s: graphref wrote %d lines, we wrote %d", tier, len(la), len(lb))
	}
}

// TestGraphrefCheck compares the Checker with `graphref.py check` on a
// generated graph, intact and with a dangling edge and a duplicate node
// planted by `graphref.py corrupt-line`.
func TestGraphrefCheck(t *testing.T) {
	run := graphref(t)
	dir := t.TempDir()
	if _, err := graphgen.WriteDir(dir, graphgen.Options{Nodes: 2000, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	check := func(name string) {
		t.Helper()
		out, err := run("check", dir)
		c := NewChecker(16<<10, t.TempDir())
		for _, tier := range graphgen.Tiers {
			data, rerr := os.ReadFile(filepath.Join(dir, tier+".jsonl"))
			if rerr != nil {
				t.Fatal(rerr)
			}
			addTier(t, c, tier, string(data))
		}
		rep, ferr := c.Finish()
		if ferr != nil {
			t.Fatal(ferr)
		}
		if (err == nil) != rep.OK {
			t.Fatalf("%s: graphref check exit %v, ours ok=%v\n%s", name, err, rep.OK, out)
		}
		wantProblems := int64(0)
		if m := regexp.MustCompile(`(?m)^problems: (\d+)`).FindStringSubmatch(out); m != nil {
			wantProblems, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if rep.ProblemCount != wantProblems {
			t.Errorf("%s: %d problems, graphref %d\n%s", name, rep.ProblemCount, wantProblems, out)
		}
		for _, kv := range [][2]string{{"nodes", strconv.FormatInt(rep.Stats.Total.Nodes, 10)},
			{"relationships", strconv.FormatInt(rep.Stats.Total.Relationships, 10)},
			{"  Person", strconv.FormatInt(rep.Stats.Total.Labels["Person"], 10)},
			{"  KNOWS", strconv.FormatInt(rep.Stats.Total.Types["KNOWS"], 10)}} {
			if !strings.Contains(out, "\n"+kv[0]+": "+kv[1]+"\n") {
				t.Errorf("%s: graphref does not say %q", name, kv[0]+": "+kv[1])
			}
		}
	}
	check("intact")
	for _, c := range [][]string{{"warm", "dangling"}, {"cold", "duplicate"}} {
		p := filepath.Join(dir, c[0]+".jsonl")
		if out, err := run("corrupt-line", p, "--kind", c[1], "--out", p+".tmp"); err != nil {
			t.Fatalf("corrupt-line: %v\n%s", err, out)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		check(c[1])
	}
}
