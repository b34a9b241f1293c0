package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-backup/strata/graphgen"
	"github.com/strata-backup/strata/repo/repotest"
)

// The crash tests run the real strata binary as a child process and kill
// it with SIGKILL at random moments: no deferred cleanup, no flushing, just
// what the files and the store hold at that instant. SPEC 8: a crash at any
// moment leaves a repository the next backup and restore work on, and a
// snapshot is visible only once everything it references is durable.
//
// The delays are random but seeded; the seed is logged, and
// STRATA_CRASH_SEED=N replays a run.

var (
	strataBinOnce sync.Once
	strataBin     string
	strataBinErr  error
	strataBinDir  string
)

// buildStrata builds the strata command once per test binary.
func buildStrata(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping crash test in -short mode: it builds strata and kills real backups and restores")
	}
	strataBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-crash-bin-")
		if err != nil {
			strataBinErr = err
			return
		}
		strataBinDir = dir
		afterTests = append(afterTests, func() { os.RemoveAll(dir) })
		goCmd, err := exec.LookPath("go")
		if err != nil {
			goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		bin := filepath.Join(dir, "strata")
		out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			strataBinErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		strataBin = bin
	})
	if strataBinErr != nil {
		t.Fatal(strataBinErr)
	}
	return strataBin
}

// crashEnv is one repository and the environment strata runs with.
type crashEnv struct {
	t    *testing.T
	bin  string
	dir  string
	src  string
	repo string
	env  []string
}

func newCrashEnv(t *testing.T) *crashEnv {
	c := newCrashEnvBare(t)
	c.src = filepath.Join(c.dir, "src")
	c.writeSource()
	// Small packs: a backup writes a pack every few dozen milliseconds,
	// so kills land between packs and in the middle of writing one.
	if _, stderr, code := c.run("init", "--pack-size", "2"); code != 0 {
		t.Fatalf("strata init: exit %d: %s", code, stderr)
	}
	return c
}

// newCrashEnvBare is a crashEnv with the built binary and its environment
// (no STRATA_ variable of the caller's, a cheap key derivation, a cache and
// a repository location in its directory), and nothing else.
func newCrashEnvBare(t *testing.T) *crashEnv {
	bin := buildStrata(t)
	dir := t.TempDir()
	c := &crashEnv{t: t, bin: bin, dir: dir, repo: filepath.Join(dir, "repo")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			c.env = append(c.env, kv)
		}
	}
	c.env = append(c.env,
		"STRATA_INSECURE_TEST_KDF=1",
		"STRATA_PASSWORD=crash test password",
		"STRATA_CACHE_DIR="+filepath.Join(dir, "cache"),
		"STRATA_REPOSITORY="+c.repo,
	)
	return c
}

// writeSource writes about 40 MiB: a sample graph (text that compresses
// and deduplicates within itself) and random bytes (which do neither),
// plus a few small and empty files.
func (c *crashEnv) writeSource() {
	t := c.t
	n, err := graphgen.WriteDir(filepath.Join(c.src, "graph"), graphgen.Options{Nodes: 40000, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, size := range []int{7 << 20, 3 << 20, 1 << 20, 100 << 10, 1} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		repotest.WriteFile(t, filepath.Join(c.src, "random", fmt.Sprintf("r%d.bin", i)), b)
		n += int64(size)
	}
	repotest.WriteFile(t, filepath.Join(c.src, "empty"), nil)
	repotest.WriteFile(t, filepath.Join(c.src, "deep", "a", "b", "c.txt"), []byte("deep\n"))
	t.Logf("source: %.1f MiB", float64(n)/(1<<20))
}

// writeRandom replaces p's content with size fresh random bytes.
func (c *crashEnv) writeRandom(p string, size int, rng *rand.Rand) {
	b := make([]byte, size)
	for j := 0; j+8 <= len(b); j += 8 {
		x := rng.Uint64()
		for k := range 8 {
			b[j+k] = byte(x >> (8 * k))
		}
	}
	repotest.WriteFile(c.t, p, b)
}

func (c *crashEnv) command(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// run runs strata to the end and returns its output and exit code.
func (c *crashEnv) run(args ...string) (string, string, int) {
	c.t.Helper()
	cmd, stdout, stderr := c.command(args...)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	c.t.Fatalf("strata %s: %v", strings.Join(args, " "), err)
	return "", "", -1
}

// mustRun runs strata and fails the test unless it exits 0.
func (c *crashEnv) mustRun(args ...string) string {
	c.t.Helper()
	stdout, stderr, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("strata %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// killAfter starts strata and kills it with SIGKILL after delay. It reports
// whether the process was still running when killed (false: it had
// already exited, with that exit code).
func (c *crashEnv) killAfter(delay time.Duration, args ...string) (killed bool, code int, stderr string) {
	c.t.Helper()
	cmd, _, errBuf := c.command(args...)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			c.t.Fatal(err)
		}
		return false, code, errBuf.String()
	case <-time.After(delay):
	}
	_ = cmd.Process.Kill() // by pid: only the child this test started
	err := <-done
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
		return true, -1, errBuf.String()
	}
	// It exited on its own between the timer and the kill.
	code = 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return false, code, errBuf.String()
}

type crashSnapshot struct {
	ID         string           `json:"id"`
	ShortID    string           `json:"short_id"`
	Time       time.Time        `json:"time"`
	Paths      []string         `json:"paths"`
	Incomplete []map[string]any `json:"incomplete"`
}

// snapshots lists the snapshots with --json; the output must parse.
func (c *crashEnv) snapshots() []crashSnapshot {
	c.t.Helper()
	out := c.mustRun("snapshots", "--json")
	var list []crashSnapshot
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		c.t.Fatalf("snapshots --json does not parse: %v\n%s", err, out)
	}
	return list
}

// checkRestores restores every snapshot not checked before, with
// --verify, and compares it with the source byte for byte: a snapshot that
// is listed at all must be whole.
func (c *crashEnv) checkRestores(checked map[string]bool) {
	c.t.Helper()
	for _, s := range c.snapshots() {
		if checked[s.ID] {
			continue
		}
		if len(s.Incomplete) > 0 || len(s.Paths) != 1 || s.Paths[0] != c.src {
			c.t.Fatalf("snapshot %s: unexpected paths %v or incomplete %v", s.ShortID, s.Paths, s.Incomplete)
		}
		target := filepath.Join(c.dir, "check-"+s.ShortID)
		c.mustRun("restore", s.ID, "--target", target, "--verify")
		compareTrees(c.t, c.src, filepath.Join(target, c.src))
		if err := os.RemoveAll(target); err != nil {
			c.t.Fatal(err)
		}
		checked[s.ID] = true
	}
}

// compareTrees requires got to hold exactly want's directories, regular
// files (byte for byte, with their permissions) and symlinks.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		gp := filepath.Join(got, rel)
		gi, err := os.Lstat(gp)
		if err != nil {
			return fmt.Errorf("restored tree: %w", err)
		}
		wi, err := d.Info()
		if err != nil {
			return err
		}
		if gi.Mode() != wi.Mode() {
			return fmt.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		if !wi.Mode().IsRegular() {
			return nil
		}
		wb, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		gb, err := os.ReadFile(gp)
		if err != nil {
			return err
		}
		if !bytes.Equal(wb, gb) {
			return fmt.Errorf("%s: restored content differs (%d bytes, want %d)", rel, len(gb), len(wb))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			return fmt.Errorf("restored tree has %s, the source does not", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func crashRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with STRATA_CRASH_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

func randDelay(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

func TestCrashDuringBackup(t *testing.T) {
	c := newCrashEnv(t)
	rng := crashRand(t)

	// An interrupt (Ctrl-C, SIGTERM) is not a crash: strata stops, says
	// so, exits 130 and leaves no snapshot.
	checked := map[string]bool{}
	cmd, _, stderr := c.command("backup", c.src)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == exitInterrupted:
		t.Log("interrupted backup: exit 130")
		if !strings.Contains(stderr.String(), "strata: interrupted") {
			t.Errorf("interrupted backup: stderr %q, want \"strata: interrupted\"", stderr)
		}
		if n := len(c.snapshots()); n != 0 {
			t.Errorf("interrupted backup left %d snapshots", n)
		}
	case err == nil:
		// Its snapshot is checked now, against the source it was taken
		// from: the kills below change the source.
		t.Log("the backup finished before the interrupt")
		c.checkRestores(checked)
	default:
		t.Errorf("interrupted backup: %v, want exit %d; stderr: %s", err, exitInterrupted, stderr)
	}

	// Kill backups at random moments: from 10 ms up to 400 ms, or up to
	// how long the last backup that finished took if that was less (a fast
	// disk finishes a backup well within 400 ms), so kills land anywhere
	// from opening the repository through chunking and pack uploads to the
	// index and the snapshot. Before each one a file gets new random
	// content, so every backup has packs to write even once an earlier one
	// has finished; each snapshot that appears is checked against the
	// source as it was.
	start := time.Now()
	const kills = 8
	killedCount := 0
	window := 400 * time.Millisecond
	for i := range kills {
		c.writeRandom(filepath.Join(c.src, "changing", "gen.bin"), 16<<20, rng)
		delay := randDelay(rng, 10*time.Millisecond, window)
		began := time.Now()
		killed, code, stderr := c.killAfter(delay, "backup", c.src, "--json")
		switch {
		case killed:
			killedCount++
			t.Logf("kill %d: backup killed after %v", i, delay)
		case code == 0:
			took := time.Since(began)
			t.Logf("kill %d: backup finished in %v, before the kill at %v", i, took.Round(time.Millisecond), delay)
			window = min(window, max(took, 20*time.Millisecond))
		default:
			t.Fatalf("kill %d: backup failed on its own (exit %d) before the kill: %s", i, code, stderr)
		}
		c.checkRestores(checked)
	}
	t.Logf("%d backups killed, %d finished first; %d snapshots checked; in %v", killedCount, kills-killedCount, len(checked), time.Since(start).Round(time.Millisecond))

	// A normal backup afterwards works, and so does a restore of it.
	out := c.mustRun("backup", c.src, "--json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var sum struct {
		MessageType string `json:"message_type"`
		SnapshotID  string `json:"snapshot_id"`
		Incomplete  bool   `json:"incomplete"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.MessageType != "summary" || sum.Incomplete {
		t.Fatalf("final backup: summary %q: %v", lines[len(lines)-1], err)
	}
	target := filepath.Join(c.dir, "final")
	c.mustRun("restore", sum.SnapshotID, "--target", target, "--verify")
	compareTrees(t, c.src, filepath.Join(target, c.src))
	checked[sum.SnapshotID] = true
	c.checkRestores(checked)
}

func TestCrashDuringRestore(t *testing.T) {
	c := newCrashEnv(t)
	rng := crashRand(t)
	c.mustRun("backup", c.src, "-q")
	target := filepath.Join(c.dir, "target")
	start := time.Now()
	c.mustRun("restore", "latest", "--target", filepath.Join(c.dir, "timing"))
	full := max(time.Since(start), 50*time.Millisecond)
	if err := os.RemoveAll(filepath.Join(c.dir, "timing")); err != nil {
		t.Fatal(err)
	}
	t.Logf("an uninterrupted restore took %v", full)

	// Kill restores into the same target at random moments; each next
	// restore must cope with what the killed one left behind.
	for i := range 4 {
		delay := randDelay(rng, 10*time.Millisecond, full*9/10)
		killed, code, stderr := c.killAfter(delay, "restore", "latest", "--target", target)
		switch {
		case killed:
			t.Logf("kill %d: restore killed after %v", i, delay)
		case code == 0:
			t.Logf("kill %d: restore finished within %v", i, delay)
		default:
			t.Fatalf("kill %d: restore failed on its own (exit %d): %s", i, code, stderr)
		}
	}
	c.mustRun("restore", "latest", "--target", target, "--verify")
	compareTrees(t, c.src, filepath.Join(target, c.src))
	// The repository is untouched by restores: the snapshot is still whole.
	c.checkRestores(map[string]bool{})
}
