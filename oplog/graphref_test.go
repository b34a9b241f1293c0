package oplog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-backup/strata/graph"
)

// sharedDir returns ../shared (relative to the module root) or skips.
func sharedDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("graphref comparison: skipped in -short mode")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("graphref comparison: python3 not found")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"tools/graphref.py", "tools/ldbc2strata.py", "data/ldbc-snb-interactive-v1-test"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Skipf("graphref comparison: %s not available (%v)", p, err)
		}
	}
	return dir
}

var (
	ldbcOnce sync.Map // flags -> *ldbcData
)

type ldbcData struct {
	once sync.Once
	dir  string
	err  error
}

// ldbc generates the LDBC tiers and oplog once per test binary.
func ldbc(t *testing.T, shared string, flags ...string) string {
	t.Helper()
	key := strings.Join(flags, " ")
	v, _ := ldbcOnce.LoadOrStore(key, &ldbcData{})
	d := v.(*ldbcData)
	d.once.Do(func() {
		dir, err := os.MkdirTemp("", "oplog-ldbc-")
		if err != nil {
			d.err = err
			return
		}
		args := append([]string{filepath.Join(shared, "tools/ldbc2strata.py"),
			"--data", filepath.Join(shared, "data/ldbc-snb-interactive-v1-test"), "--out", dir}, flags...)
		out, err := exec.Command("python3", args...).CombinedOutput()
		if err != nil {
			d.err = fmt.Errorf("ldbc2strata: %v\n%s", err, out)
		}
		d.dir = dir
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	ldbcOnce.Range(func(_, v any) bool {
		if d := v.(*ldbcData); d.dir != "" {
			os.RemoveAll(d.dir)
		}
		return true
	})
	os.Exit(code)
}

// sortedTier reads a (possibly unsorted) tier file into a canonical stream.
func sortedTier(t *testing.T, path, name string) graph.Iterator {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := graph.NewSorter(16<<20, t.TempDir())
	rd := graph.NewReader(f, name)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(rec, rec.Line); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Sort()
	if err != nil {
		t.Fatal(err)
	}
	return it
}

type cut struct {
	args []string // graphref flags
	opts ReplayOptions
}

// replayDir replays dir's oplog over its tiers and writes <tier>.jsonl to out.
func replayDir(t *testing.T, dir string, opts ReplayOptions, out string) *ReplayResult {
	return replayOver(t, dir, dir, opts, out)
}

// replayOver replays dir's oplog over the tiers in tierDir.
func replayOver(t *testing.T, dir, tierDir string, opts ReplayOptions, out string) *ReplayResult {
	t.Helper()
	tiers := map[string]graph.Iterator{}
	for _, n := range []string{"cold", "warm", "fast"} {
		tiers[n] = sortedTier(t, filepath.Join(tierDir, n+".jsonl"), n)
	}
	f, err := os.Open(filepath.Join(dir, "oplog.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if opts.TmpDir == "" {
		opts.TmpDir = t.TempDir()
	}
	res, err := Replay(tiers, NewReader(f), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, it := range res.Tiers {
		w, err := os.Create(filepath.Join(out, n+".jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := graph.WriteLines(w, it); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func graphrefState(t *testing.T, shared, dir string, args []string, out string) string {
	return graphrefOver(t, shared, dir, dir, args, out)
}

func graphrefOver(t *testing.T, shared, dir, tierDir string, args []string, out string) string {
	t.Helper()
	cmd := append([]string{filepath.Join(shared, "tools/graphref.py"), "state",
		"--tier", "cold=" + filepath.Join(tierDir, "cold.jsonl"),
		"--tier", "warm=" + filepath.Join(tierDir, "warm.jsonl"),
		"--tier", "fast=" + filepath.Join(tierDir, "fast.jsonl"),
		"--oplog", filepath.Join(dir, "oplog.jsonl"), "--out", out}, args...)
	b, err := exec.Command("python3", cmd...).CombinedOutput()
	if err != nil {
		t.Fatalf("graphref %v: %v\n%s", args, err, b)
	}
	return string(b)
}

func sameDirs(t *testing.T, want, got string) {
	t.Helper()
	wf, _ := filepath.Glob(filepath.Join(want, "*.jsonl"))
	gf, _ := filepath.Glob(filepath.Join(got, "*.jsonl"))
	if len(wf) != len(gf) {
		t.Fatalf("tier files: want %v, got %v", wf, gf)
	}
	for _, w := range wf {
		a, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, filepath.Base(w)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
			for i := 0; i < len(al) && i < len(bl); i++ {
				if !bytes.Equal(al[i], bl[i]) {
					t.Fatalf("%s differs at line %d:\nwant %s\ngot  %s", filepath.Base(w), i+1, al[i], bl[i])
				}
			}
			t.Fatalf("%s differs: want %d lines, got %d", filepath.Base(w), len(al), len(bl))
		}
	}
}

type manifest struct {
	Probes struct {
		LDBCEventsEnd struct {
			LSN uint64 `json:"lsn"`
		} `json:"ldbc_events_end"`
		MoveTx struct {
			FirstLSN uint64 `json:"first_lsn"`
			FirstTS  string `json:"first_ts"`
			LastLSN  uint64 `json:"last_lsn"`
		} `json:"move_tx"`
		MultiRecordTx struct {
			FirstLSN uint64 `json:"first_lsn"`
			LastLSN  uint64 `json:"last_lsn"`
		} `json:"multi_record_tx"`
	} `json:"probes"`
	Oplog struct {
		LastLSN uint64 `json:"last_lsn"`
	} `json:"oplog"`
}

func readManifest(t *testing.T, dir string) manifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func lastLSN(t *testing.T, dir string) uint64 {
	f, err := os.Open(filepath.Join(dir, "oplog.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := NewReader(f)
	var last uint64
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return last
		}
		if err != nil {
			t.Fatal(err)
		}
		last = r.LSN
	}
}

func lsnCut(n uint64) cut {
	return cut{args: []string{"--lsn", fmt.Sprint(n)}, opts: ReplayOptions{LSN: n, HasLSN: true}}
}

func atCut(t *testing.T, ts string) cut {
	tm, err := ParseTime(ts)
	if err != nil {
		t.Fatal(err)
	}
	return cut{args: []string{"--at", ts}, opts: ReplayOptions{At: &tm}}
}

func runCuts(t *testing.T, shared, dir string, cuts []cut) {
	for _, c := range cuts {
		c := c
		t.Run(strings.Join(c.args, "="), func(t *testing.T) {
			t.Parallel()
			want, got := t.TempDir(), t.TempDir()
			graphrefState(t, shared, dir, c.args, want)
			o := c.opts
			o.MemLimit = 1 << 20 // force spilling
			replayDir(t, dir, o, got)
			sameDirs(t, want, got)
		})
	}
}

func TestReplayMatchesGraphref(t *testing.T) {
	shared := sharedDir(t)
	dir := ldbc(t, shared, "--with-deletes")
	m := readManifest(t, dir)
	end := lastLSN(t, dir)
	p := m.Probes
	cuts := []cut{
		lsnCut(1),
		lsnCut(p.MultiRecordTx.FirstLSN + 1),
		lsnCut(p.MultiRecordTx.LastLSN),
		lsnCut(p.LDBCEventsEnd.LSN),
		lsnCut(p.MoveTx.FirstLSN + 1),
		lsnCut(p.MoveTx.LastLSN),
		lsnCut(end - 1),
		lsnCut(end),
		atCut(t, p.MoveTx.FirstTS),
		atCut(t, "2010-12-20T00:00:00+01:00"),
		{args: []string{"--after-lsn", "0"}, opts: ReplayOptions{HasAfter: true}},
	}
	// By default the cuts that exercise the hard cases: inside a
	// multi-record transaction, --at inside the move, and the end.
	runCuts(t, shared, dir, pick(cuts, 1, 8, 7))
}

// thoroughEnv runs every graphref comparison (each graphref run costs
// seconds; make test runs a representative subset).
const thoroughEnv = "STRATA_THOROUGH"

// pick returns cuts[i...] unless STRATA_THOROUGH=1 asks for all of them.
func pick[T any](all []T, idx ...int) []T {
	if os.Getenv(thoroughEnv) == "1" {
		return all
	}
	out := make([]T, 0, len(idx))
	for _, i := range idx {
		out = append(out, all[i])
	}
	return out
}

func TestReplaySparseMatchesGraphref(t *testing.T) {
	shared := sharedDir(t)
	dir := ldbc(t, shared, "--with-deletes", "--sparse")
	m := readManifest(t, dir)
	end := lastLSN(t, dir)
	p := m.Probes
	cuts := []cut{
		lsnCut(p.MultiRecordTx.FirstLSN + 1),
		lsnCut(p.MoveTx.FirstLSN + 1),
		lsnCut(p.LDBCEventsEnd.LSN),
		lsnCut(end),
		atCut(t, p.MoveTx.FirstTS),
	}
	runCuts(t, shared, dir, pick(cuts, 1))
}

// TestReplayAfterLSNMatchesGraphref replays (K, N] over graphref's state at
// K, as restore does over a snapshot cut at K, including a K inside a
// transaction (the move), where the records <= K are skipped.
func TestReplayAfterLSNMatchesGraphref(t *testing.T) {
	shared := sharedDir(t)
	dir := ldbc(t, shared, "--with-deletes")
	m := readManifest(t, dir)
	end := lastLSN(t, dir)
	p := m.Probes
	for _, kn := range pick([][2]uint64{{p.MultiRecordTx.FirstLSN - 1, end}, {p.LDBCEventsEnd.LSN, p.MoveTx.LastLSN}, {p.MoveTx.FirstLSN + 1, end}}, 2) {
		k, n := kn[0], kn[1]
		t.Run(fmt.Sprintf("K=%d,N=%d", k, n), func(t *testing.T) {
			t.Parallel()
			snap, want, got := t.TempDir(), t.TempDir(), t.TempDir()
			graphrefState(t, shared, dir, []string{"--lsn", fmt.Sprint(k)}, snap)
			args := []string{"--after-lsn", fmt.Sprint(k), "--lsn", fmt.Sprint(n)}
			graphrefOver(t, shared, dir, snap, args, want)
			replayOver(t, dir, snap, ReplayOptions{AfterLSN: k, HasAfter: true, LSN: n, HasLSN: true, MemLimit: 1 << 20}, got)
			sameDirs(t, want, got)
		})
	}
}
