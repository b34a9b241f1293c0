package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Point-in-time recovery on real data, end to end through the CLI: the
// LDBC SNB update streams, converted by ../shared/tools/ldbc2strata.py into
// three tiers and a mutation log, are backed up and pushed; restores at
// lsns and times (through transactions, deletes, a tier move) must equal
// ../shared/tools/graphref.py's state at the same point, compared with its
// own `compare`.

// sharedTools returns ../shared (tools and the LDBC data) or skips: the
// data and python3 are not part of a fresh clone's guarantees.
func sharedTools(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("LDBC PITR test: python3 not found")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tools/graphref.py", "tools/ldbc2strata.py", "data/ldbc-snb-interactive-v1-test"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Skipf("LDBC PITR test: %s not available (%v)", p, err)
		}
	}
	return dir
}

type pitrEnv struct {
	t      *testing.T
	bin    string
	shared string
	dir    string
	env    []string
}

func newPITREnv(t *testing.T) *pitrEnv {
	shared := sharedTools(t)
	e := &pitrEnv{t: t, bin: buildStrata(t), shared: shared, dir: t.TempDir()}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			e.env = append(e.env, kv)
		}
	}
	e.env = append(e.env, "STRATA_INSECURE_TEST_KDF=1", "STRATA_PASSWORD=pitr",
		"STRATA_CACHE_DIR="+filepath.Join(e.dir, "cache"), "STRATA_REPOSITORY="+filepath.Join(e.dir, "repo"))
	e.strata(0, "init")
	return e
}

// strata runs the command and checks its exit code; it returns stdout and
// stderr.
func (e *pitrEnv) strata(want int, args ...string) (string, string) {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env, cmd.Dir = e.env, e.dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	e.t.Logf("strata %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	if code != want {
		e.t.Fatalf("strata %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func (e *pitrEnv) python(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("python3", args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("python3 %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// convert runs ldbc2strata with flags into a new directory.
func (e *pitrEnv) convert(name string, flags ...string) string {
	out := filepath.Join(e.dir, name)
	args := append([]string{filepath.Join(e.shared, "tools", "ldbc2strata.py"),
		"--data", filepath.Join(e.shared, "data", "ldbc-snb-interactive-v1-test"), "--out", out,
		"--write-final", filepath.Join(out, "final")}, flags...)
	e.python(args...)
	return out
}

// states computes graphref states of src's tiers and log, in parallel (two
// at a time: graphref holds the graph in memory and takes seconds).
func (e *pitrEnv) states(src string, cuts map[string][]string) map[string]string {
	out := map[string]string{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	errs := make(chan error, len(cuts))
	for name, cut := range cuts {
		dir := filepath.Join(e.dir, "want-"+name)
		out[name] = dir
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := []string{filepath.Join(e.shared, "tools", "graphref.py"), "state"}
			for _, tier := range []string{"cold", "warm", "fast"} {
				args = append(args, "--tier", tier+"="+filepath.Join(src, tier+".jsonl"))
			}
			args = append(args, "--oplog", filepath.Join(src, "oplog.jsonl"))
			args = append(append(args, cut...), "--out", dir)
			if b, err := exec.Command("python3", args...).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("graphref state %v: %v\n%s", cut, err, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	return out
}

// same compares a restored directory with graphref's expected state. Both
// write the canonical form, so the files must be equal byte for byte (a
// stricter test than graphref's semantic compare, which is run only to
// describe a difference: it takes seconds per graph).
func (e *pitrEnv) same(what, want, got string) {
	e.t.Helper()
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*.jsonl"))
	gotFiles, _ := filepath.Glob(filepath.Join(got, "*.jsonl"))
	equal := len(wantFiles) > 0 && len(wantFiles) == len(gotFiles)
	for _, w := range wantFiles {
		if filepath.Base(w) == "oplog.jsonl" {
			continue
		}
		a, err1 := os.ReadFile(w)
		b, err2 := os.ReadFile(filepath.Join(got, filepath.Base(w)))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			equal = false
		}
	}
	if equal {
		return
	}
	out, err := exec.Command("python3", filepath.Join(e.shared, "tools", "graphref.py"), "compare", want, got).CombinedOutput()
	e.t.Errorf("%s: the restored tiers differ from graphref's state (graphref compare: %v)\n%s", what, err, out)
}

func (e *pitrEnv) restore(what string, args ...string) string {
	e.t.Helper()
	dir := filepath.Join(e.dir, "got-"+what)
	e.strata(0, append(append([]string{"restore"}, args...), "--target", dir)...)
	return dir
}

func TestPITRLDBC(t *testing.T) {
	if testing.Short() {
		t.Skip("LDBC PITR test: skipped in -short mode")
	}
	e := newPITREnv(t)
	src := e.convert("ldbc", "--with-deletes")
	tiers := func(dir map[string]string) []string {
		var a []string
		for _, tier := range []string{"cold", "warm", "fast"} {
			a = append(a, "--tier", tier+"="+dir[tier])
		}
		return a
	}
	srcTiers := map[string]string{}
	for _, tier := range []string{"cold", "warm", "fast"} {
		srcTiers[tier] = filepath.Join(src, tier+".jsonl")
	}
	// The exports taken before the log begins: a base at cut 0.
	e.strata(0, append([]string{"backup", "--lsn-start", "0", "--lsn-end", "0", "--tag", "base"}, tiers(srcTiers)...)...)
	out, _ := e.strata(0, "oplog", "push", filepath.Join(src, "oplog.jsonl"), "--json")
	if !strings.Contains(out, `"records":19962`) {
		t.Fatalf("push summary: %s", out)
	}

	// A fuzzy export between lsn 9000 and 9666, each tier taken at another
	// moment, as a live database gives it: cold at 9000, warm at 9400, fast
	// at 9664. Its cut (9000, 9666] falls inside the transaction 9665..9668,
	// so it lands on 9668.
	cuts := map[string][]string{
		"9000": {"--lsn", "9000"}, "9400": {"--lsn", "9400"}, "9666": {"--lsn", "9666"}, "9668": {"--lsn", "9668"},
	}
	thorough := os.Getenv("STRATA_THOROUGH") != ""
	if thorough {
		cuts["move"] = []string{"--at", "2010-12-31T23:56:37.377Z"}
		cuts["14000"] = []string{"--lsn", "14000"}
		cuts["early"] = []string{"--at", "2010-11-30T00:00:00Z"}
	}
	want := e.states(src, cuts)
	fuzzy := map[string]string{
		"cold": filepath.Join(want["9000"], "cold.jsonl"),
		"warm": filepath.Join(want["9400"], "warm.jsonl"),
		"fast": filepath.Join(want["9666"], "fast.jsonl"),
	}
	e.strata(0, append([]string{"backup", "--pre-hook", "echo starting; echo 9000", "--post-hook", "echo 9666", "--tag", "fuzzy"}, tiers(fuzzy)...)...)

	e.same("fuzzy snapshot at its cut", want["9668"], e.restore("fuzzy", "latest", "--tag", "fuzzy"))
	e.same("--lsn 9668 (the fuzzy base)", want["9668"], e.restore("lsn9668", "--lsn", "9668"))
	e.same("--lsn 9666 (inside a transaction)", want["9666"], e.restore("lsn9666", "--lsn", "9666"))
	e.same("--lsn 9000", want["9000"], e.restore("lsn9000", "--lsn", "9000"))
	if thorough {
		e.same("--at inside the tier-move transaction", want["move"], e.restore("move", "--at", "2010-12-31T23:56:37.377Z"))
		e.same("--lsn 14000", want["14000"], e.restore("lsn14000", "--lsn", "14000"))
		e.same("--at an early time", want["early"], e.restore("early", "--at", "2010-11-30T00:00:00Z"))
	}
	e.same("--lsn 19962 (the end)", filepath.Join(src, "final"), e.restore("end", "--lsn", "19962"))

	// One tier to stdout at a point.
	stdout, _ := e.strata(0, "restore", "--lsn", "9666", "--tier", "fast", "--target", "-")
	if b, err := os.ReadFile(filepath.Join(want["9666"], "fast.jsonl")); err != nil || string(b) != stdout {
		t.Errorf("restore --lsn 9666 --tier fast --target - differs from graphref's fast.jsonl (%d vs %d bytes, %v)", len(stdout), len(b), err)
	}

	// Beyond the log: refused, naming the newest reachable point.
	_, stderr := e.strata(1, "restore", "--lsn", "20000", "--target", filepath.Join(e.dir, "beyond"))
	if !strings.Contains(stderr, "newest reachable point is lsn 19962") {
		t.Errorf("restore beyond the log: %s", stderr)
	}
	_, stderr = e.strata(1, "restore", "--at", "2011-02-01T00:00:00Z", "--target", filepath.Join(e.dir, "beyond2"))
	if !strings.Contains(stderr, "2011-01-01T05:02:23.445Z") {
		t.Errorf("restore --at beyond the log: %s", stderr)
	}

	// The timeline: one window over the whole log, both snapshots bases.
	out, _ = e.strata(0, "timeline", "--json")
	var tl struct {
		Windows []struct {
			FromLSN uint64 `json:"from_lsn"`
			ToLSN   uint64 `json:"to_lsn"`
		} `json:"windows"`
		Snapshots []struct {
			CutLSN      uint64 `json:"cut_lsn"`
			Recoverable bool   `json:"recoverable"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil {
		t.Fatalf("timeline --json: %v\n%s", err, out)
	}
	if len(tl.Windows) != 1 || len(tl.Snapshots) != 2 || tl.Snapshots[1].CutLSN != 9668 || !tl.Snapshots[1].Recoverable {
		t.Errorf("timeline: %s", out)
	}
}

func TestPITRLDBCSparse(t *testing.T) {
	if testing.Short() {
		t.Skip("LDBC PITR test: skipped in -short mode")
	}
	e := newPITREnv(t)
	src := e.convert("sparse", "--with-deletes", "--sparse")
	var args []string
	for _, tier := range []string{"cold", "warm", "fast"} {
		args = append(args, "--tier", tier+"="+filepath.Join(src, tier+".jsonl"))
	}
	e.strata(0, append([]string{"backup", "--lsn-start", "0", "--lsn-end", "0"}, args...)...)
	e.strata(0, "oplog", "push", filepath.Join(src, "oplog.jsonl"), "--segment-size", "256KiB")
	var m struct {
		Oplog struct {
			LastLSN uint64 `json:"last_lsn"`
		} `json:"oplog"`
	}
	b, err := os.ReadFile(filepath.Join(src, "manifest.json"))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil || m.Oplog.LastLSN == 0 {
		t.Fatalf("manifest: %v (last lsn %d)", err, m.Oplog.LastLSN)
	}
	mid := m.Oplog.LastLSN / 2 // most likely not an lsn of the sparse log
	want := e.states(src, map[string][]string{"mid": {"--lsn", fmt.Sprint(mid)}})
	e.same("sparse --lsn mid", want["mid"], e.restore("mid", "--lsn", fmt.Sprint(mid)))
	e.same("sparse --lsn end", filepath.Join(src, "final"), e.restore("end", "--lsn", fmt.Sprint(m.Oplog.LastLSN)))
}
