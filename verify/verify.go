// Package verify proves that backups can be restored: check inspects the
// repository's structure and data, verify runs a snapshot through the
// steps an actual recovery takes (SPEC section 7) and records the result.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/graph"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// Step names, in the order verify runs them.
const (
	StepIntegrity  = "integrity"
	StepRestore    = "restore"
	StepGraph      = "graph-integrity"
	StepThroughput = "throughput"
)

// DefaultMaxSlowdown fails the throughput step when a restore is more than
// 50% slower than the median of earlier verifications.
const DefaultMaxSlowdown = 0.5

// Step is one step's outcome.
type Step struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail"`
}

// RunStep runs f as a timed step: its detail when it passes, its error's
// text when it fails. Verify and drill time their steps with it.
func RunStep(name string, f func() (string, error)) Step {
	start := time.Now()
	detail, err := f()
	st := Step{Name: name, OK: err == nil, Seconds: time.Since(start).Seconds(), Detail: detail}
	if err != nil {
		st.Detail = err.Error()
	}
	return st
}

// Report is a verification: what SPEC section 9 prints and what
// verifications/<id> stores.
type Report struct {
	OK         bool      `json:"ok"`
	SnapshotID string    `json:"snapshot_id"`
	Time       time.Time `json:"time"`
	Hostname   string    `json:"hostname,omitempty"`
	Steps      []Step    `json:"steps"`
	// RestoreBytes is what the test restore wrote; RestoreBytesPerSecond
	// its rate; RTOEstimateSeconds the time a recovery of this snapshot
	// takes at that rate (restore plus the integrity check).
	RestoreBytes          int64   `json:"restore_bytes"`
	RestoreBytesPerSecond float64 `json:"restore_bytes_per_second"`
	RTOEstimateSeconds    float64 `json:"rto_estimate_seconds"`
	// BaselineBytesPerSecond is the median of earlier verifications (0:
	// none yet).
	BaselineBytesPerSecond float64 `json:"baseline_bytes_per_second,omitempty"`
	Packs                  int     `json:"packs_checked"`
	LogRecords             int     `json:"log_records_checked"`
}

// Failed returns the first failed step (nil if none).
func (rep *Report) Failed() *Step {
	for i := range rep.Steps {
		if !rep.Steps[i].OK {
			return &rep.Steps[i]
		}
	}
	return nil
}

// Options tune Verify.
type Options struct {
	// RestoreTo is where the test restore goes (kept); default a
	// temporary directory under TmpDir, removed afterwards.
	RestoreTo string
	// VerifyCmd runs (sh -c) after the graph check, with the restored
	// directory as STRATA_RESTORE_DIR and {dir} in the command replaced by
	// it; a non-zero exit fails the graph step.
	VerifyCmd string
	// MaxSlowdown is the throughput step's tolerance (default
	// DefaultMaxSlowdown; negative: never fail on speed).
	MaxSlowdown float64
	// NoRecord stores nothing; otherwise the report goes to
	// verifications/.
	NoRecord   bool
	SortMemory int64
	TmpDir     string
	// Progress is told each step as it starts (nil: silent).
	Progress func(step string)
	// RestoreProgress is told the test restore's bytes and files (nil:
	// silent).
	RestoreProgress snapshot.Progress
}

// Verify runs SPEC section 7's steps on snapshot e in order and stops at the
// first failure: (1) integrity of every object the snapshot needs (its
// packs read whole and hashed, log segments of its cut window
// authenticated), (2) a full test restore, at the cut, (3) graph integrity
// of the restored tiers and VerifyCmd, (4) restore throughput and the RTO it
// implies, against the median of earlier verifications. The error is for
// operational failures; a failed step is in the report.
func Verify(ctx context.Context, r *repo.Repository, e snapshot.Entry, opts Options) (*Report, error) {
	if opts.MaxSlowdown == 0 {
		opts.MaxSlowdown = DefaultMaxSlowdown
	}
	host, _ := os.Hostname()
	rep := &Report{SnapshotID: e.ID.String(), Time: time.Now().UTC(), Hostname: host}
	progress := func(s string) {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}
	run := func(name string, f func() (string, error)) bool {
		progress(name)
		st := RunStep(name, f)
		rep.Steps = append(rep.Steps, st)
		return st.OK
	}
	finish := func() (*Report, error) {
		rep.OK = rep.Failed() == nil && len(rep.Steps) == 4
		if !opts.NoRecord {
			if _, _, err := r.SaveJSON(ctx, repo.PrefixVerifications, rep); err != nil {
				return rep, fmt.Errorf("record the verification: %w", err)
			}
		}
		return rep, nil
	}

	if !run(StepIntegrity, func() (string, error) { return checkObjects(ctx, r, e, rep) }) {
		return finish()
	}

	dir := opts.RestoreTo
	if dir == "" {
		tmp, err := os.MkdirTemp(opts.TmpDir, "strata-verify-")
		if err != nil {
			return nil, fmt.Errorf("verify: create the test restore directory: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	var restoreSecs float64
	if !run(StepRestore, func() (string, error) {
		start := time.Now()
		res, err := snapshot.RestoreSnapshot(ctx, r, e, snapshot.SnapshotRestoreOptions{
			RestoreOptions: snapshot.RestoreOptions{Target: dir, Progress: opts.RestoreProgress},
			SortMemory:     opts.SortMemory, TmpDir: opts.TmpDir,
		})
		restoreSecs = time.Since(start).Seconds()
		if res != nil {
			rep.RestoreBytes = res.Bytes
		}
		if err != nil {
			return "", fmt.Errorf("test restore to %s: %w", dir, err)
		}
		return fmt.Sprintf("%d files, %d bytes restored to %s", res.Files, res.Bytes, dir), nil
	}) {
		return finish()
	}

	var checkSecs float64
	if !run(StepGraph, func() (string, error) {
		start := time.Now()
		detail, err := checkRestored(ctx, e, dir, opts)
		checkSecs = time.Since(start).Seconds()
		return detail, err
	}) {
		return finish()
	}

	run(StepThroughput, func() (string, error) {
		rep.RestoreBytesPerSecond = float64(rep.RestoreBytes) / max(restoreSecs, 1e-6)
		rep.RTOEstimateSeconds = restoreSecs + checkSecs
		base, n, err := baseline(ctx, r, rep)
		if err != nil {
			return "", err
		}
		rep.BaselineBytesPerSecond = base
		detail := fmt.Sprintf("%.1f MB/s, RTO estimate %.1fs", rep.RestoreBytesPerSecond/1e6, rep.RTOEstimateSeconds)
		if n == 0 {
			return detail + " (no earlier verification to compare with)", nil
		}
		detail += fmt.Sprintf("; median of %d earlier verifications %.1f MB/s", n, base/1e6)
		// Tiny restores are dominated by fixed costs: judge speed only
		// from 1 MiB on.
		if opts.MaxSlowdown > 0 && rep.RestoreBytes >= 1<<20 && rep.RestoreBytesPerSecond < base*(1-opts.MaxSlowdown) {
			return "", fmt.Errorf("restore throughput %.1f MB/s is more than %.0f%% below the median of earlier verifications (%.1f MB/s)",
				rep.RestoreBytesPerSecond/1e6, opts.MaxSlowdown*100, base/1e6)
		}
		return detail, nil
	})
	return finish()
}

// checkObjects is step 1: the snapshot is complete, every pack holding a
// blob it needs hashes to its name, and the log segments its cut replays
// authenticate and chain.
func checkObjects(ctx context.Context, r *repo.Repository, e snapshot.Entry, rep *Report) (string, error) {
	if n := len(e.Incomplete); n > 0 {
		return "", fmt.Errorf("the snapshot is incomplete: %d source files could not be read (first: %s: %s)", n, e.Incomplete[0].Path, e.Incomplete[0].Error)
	}
	blobs, err := neededBlobs(ctx, r, e)
	if err != nil {
		return "", err
	}
	packs := map[chunk.ID]bool{}
	for id := range blobs {
		locs, err := r.LookupBlob(ctx, id)
		if err != nil {
			return "", fmt.Errorf("blob %s: %w", id.Short(), err)
		}
		if len(locs) == 0 {
			return "", fmt.Errorf("blob %s is in no pack: %w", id.Short(), repo.ErrBlobNotFound)
		}
		packs[locs[0].Pack] = true
	}
	ids := make([]chunk.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(backend.Connections(r.Backend(), 4))
	var mu sync.Mutex
	var bad []string
	for _, id := range ids {
		g.Go(func() error {
			key := repo.ObjectKey(repo.PrefixData, id)
			b, err := backend.LoadAll(gctx, r.Backend(), key)
			switch {
			case err != nil && gctx.Err() == nil:
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s: %v", key, err))
				mu.Unlock()
			case err == nil && chunk.ObjectID(b) != id:
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s: its bytes do not hash to its name", key))
				mu.Unlock()
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	rep.Packs = len(ids)
	if len(bad) > 0 {
		slices.Sort(bad)
		return "", fmt.Errorf("%d of %d packs damaged: %s", len(bad), len(ids), strings.Join(bad, "; "))
	}
	segs, err := checkCutSegments(ctx, r, e)
	rep.LogRecords = segs
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d blobs in %d packs, %d log records", len(blobs), len(ids), segs), nil
}

// neededBlobs returns every blob (trees and data) the snapshot needs.
func neededBlobs(ctx context.Context, r *repo.Repository, e snapshot.Entry) (map[chunk.ID]bool, error) {
	out := map[chunk.ID]bool{}
	var roots []chunk.ID
	if e.Tree != nil {
		roots = append(roots, *e.Tree)
	}
	for _, t := range e.Tiers {
		if t.Tree != nil {
			roots = append(roots, *t.Tree)
		}
	}
	var walk func(id chunk.ID) error
	walk = func(id chunk.ID) error {
		if out[id] {
			return nil
		}
		out[id] = true
		tree, err := snapshot.LoadTree(ctx, r, id)
		if err != nil {
			return fmt.Errorf("tree %s: %w", id.Short(), err)
		}
		for _, n := range tree.Nodes {
			for _, c := range n.Content {
				out[c] = true
			}
			if n.Subtree != nil {
				if err := walk(*n.Subtree); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, id := range roots {
		if err := walk(id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkCutSegments loads (hash, authenticate, decode, chain) the log
// segments a snapshot's cut replays, those holding (lsn_start, lsn_end],
// and returns how many records they gave.
func checkCutSegments(ctx context.Context, r *repo.Repository, e snapshot.Entry) (int, error) {
	c := e.Cut
	if c == nil || c.LSNEnd <= c.LSNStart {
		return 0, nil
	}
	h, err := oplog.OpenHistory(ctx, r, c.Generation)
	if err != nil {
		return 0, fmt.Errorf("the cut (%d, %d] needs the log: %w", c.LSNStart, c.LSNEnd, err)
	}
	it, err := h.Read(ctx, c.LSNStart+1, c.LSNEnd)
	if err != nil {
		return 0, err
	}
	// Whether the log reaches the cut is the restore's to judge (a sparse
	// log may hold no record in the window); here every segment read must
	// authenticate and chain.
	n := 0
	for {
		_, err := it.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("log segments of the cut (%d, %d]: %w", c.LSNStart, c.LSNEnd, err)
		}
		n++
	}
}

// CheckDir runs the graph integrity check over the tiers restored into dir
// (<tier>.jsonl each) with sortMemory (0: the default) and temporary files
// in tmpDir, and returns what it found and how many tiers it read. A
// problem is an error naming the first one; no tier files is no error.
func CheckDir(ctx context.Context, dir string, sortMemory int64, tmpDir string) (detail string, tiers int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return "", 0, err
	}
	if len(files) == 0 {
		return "no graph tiers", 0, nil
	}
	its := map[string]graph.Iterator{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return "", 0, err
		}
		defer fh.Close()
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		its[name] = graph.NewLineIterator(fh, name)
	}
	if sortMemory <= 0 {
		sortMemory = snapshot.DefaultSortMemory
	}
	report, err := snapshot.CheckState(ctx, its, sortMemory, tmpDir)
	if err != nil {
		return "", 0, err
	}
	if !report.OK {
		p := report.Problems[0]
		return "", 0, fmt.Errorf("%d integrity problems in the restored graph (first: tier %s line %d: %s %s: %s)",
			report.ProblemCount, p.Tier, p.Line, p.Kind, p.ID, p.Detail)
	}
	return fmt.Sprintf("%d nodes, %d relationships in %d tiers, no problems", report.Stats.Total.Nodes, report.Stats.Total.Relationships, len(files)), len(files), nil
}

// checkRestored is step 3: the graph check over the restored tiers and
// the user's command.
func checkRestored(ctx context.Context, e snapshot.Entry, dir string, opts Options) (string, error) {
	detail, tiers, err := CheckDir(ctx, dir, opts.SortMemory, opts.TmpDir)
	if err != nil {
		return "", err
	}
	if tiers > 0 && e.Cut != nil {
		detail += fmt.Sprintf(" (at the cut, lsn %d)", e.Cut.LSNEnd)
	}
	if opts.VerifyCmd != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(opts.VerifyCmd, "{dir}", dir))
		cmd.Env = append(os.Environ(), "STRATA_RESTORE_DIR="+dir, "STRATA_SNAPSHOT_ID="+e.ID.String())
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("--verify-cmd %q: %v: %s", opts.VerifyCmd, err, lastLines(out, 5))
		}
		detail += "; --verify-cmd passed"
	}
	return detail, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// baseline returns the median restore throughput of earlier passed
// verifications (of any snapshot) and how many there were.
func baseline(ctx context.Context, r *repo.Repository, current *Report) (float64, int, error) {
	reps, err := Load(ctx, r)
	if err != nil {
		return 0, 0, err
	}
	var rates []float64
	for _, v := range reps {
		if v.OK && v.RestoreBytesPerSecond > 0 && v.RestoreBytes >= 1<<20 {
			rates = append(rates, v.RestoreBytesPerSecond)
		}
	}
	if len(rates) == 0 {
		return 0, 0, nil
	}
	sort.Float64s(rates)
	m := rates[len(rates)/2]
	if len(rates)%2 == 0 {
		m = (rates[len(rates)/2-1] + rates[len(rates)/2]) / 2
	}
	return m, len(rates), nil
}

// Load returns every stored verification, oldest first.
func Load(ctx context.Context, r *repo.Repository) ([]*Report, error) {
	var ids []chunk.ID
	if err := r.List(ctx, repo.PrefixVerifications, func(id chunk.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list verifications: %w", err)
	}
	var out []*Report
	for _, id := range ids {
		b, err := r.LoadObject(ctx, repo.PrefixVerifications, id)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("decode verification %s: %w", id.Short(), err)
		}
		out = append(out, &rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// Latest maps snapshot ids to their newest verification.
func Latest(ctx context.Context, r *repo.Repository) (map[string]*Report, error) {
	reps, err := Load(ctx, r)
	if err != nil {
		return nil, err
	}
	out := map[string]*Report{}
	for _, v := range reps {
		out[v.SnapshotID] = v // oldest first: the newest wins
	}
	return out, nil
}
