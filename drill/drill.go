// Package drill rehearses disasters without harming anything (SPEC section
// 7): it never changes an object of the real repository or its mirrors (it
// adds only a drills/ record); scenarios that damage or write work on a
// copy-on-write overlay. Every step is timed; RTO and RPO come from the
// measurements.
package drill

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/backend/fault"
	"github.com/strata-backup/strata/mirror"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
	"github.com/strata-backup/strata/verify"
)

// Scenario names.
const (
	TotalLoss  = "total-loss"
	Corruption = "corruption"
	DiskFull   = "disk-full"
	Partition  = "partition"
	SiteLoss   = "site-loss"
)

// All is every scenario, in the order --scenario all runs them.
var All = []string{TotalLoss, Corruption, DiskFull, Partition, SiteLoss}

// Step is one timed step (verify's: the same JSON in both reports).
type Step = verify.Step

// TargetTime is one row of the recovery-time table.
type TargetTime struct {
	Target  string  `json:"target"`
	Point   string  `json:"point"`
	LSN     uint64  `json:"lsn"`
	OK      bool    `json:"ok"`
	Seconds float64 `json:"seconds"`
	Detail  string  `json:"detail,omitempty"`
}

// ScenarioReport is one scenario's outcome.
type ScenarioReport struct {
	Name       string       `json:"name"`
	OK         bool         `json:"ok"`
	RTOSeconds float64      `json:"rto_seconds"`
	RPOSeconds float64      `json:"rpo_seconds"`
	Steps      []Step       `json:"steps"`
	Targets    []TargetTime `json:"targets,omitempty"`
}

// Report is a drill: what `drill --json` prints and drills/<id> stores.
type Report struct {
	OK        bool             `json:"ok"`
	Time      time.Time        `json:"time"`
	Hostname  string           `json:"hostname,omitempty"`
	From      string           `json:"from,omitempty"`
	Scenarios []ScenarioReport `json:"scenarios"`
	// RTOLimit and RPOLimit are the --rto and --rpo judged against.
	RTOLimitSeconds float64 `json:"rto_limit_seconds,omitempty"`
	RPOLimitSeconds float64 `json:"rpo_limit_seconds,omitempty"`
}

// Options say what to rehearse.
type Options struct {
	Scenarios []string
	// From is the mirror (total-loss, site-loss, corruption's repair);
	// FromLocation names it in the report. Nil: total-loss reads the
	// primary's store as if it were the mirror (said in the report).
	From         backend.Backend
	FromLocation string
	// Open opens a repository on a store with the drill's password.
	Open func(ctx context.Context, be backend.Backend) (*repo.Repository, error)
	// FetchFirst copies the whole mirror to local storage before
	// restoring (the seed's runbook), total-loss only.
	FetchFirst bool
	RTO, RPO   time.Duration
	// StartCmd and SmokeCmd run after the restore ({dir}: the restored
	// directory, also $STRATA_RESTORE_DIR).
	StartCmd, SmokeCmd string
	// Targets: latest, or -DUR before the newest mutation (total-loss).
	Targets []string
	// WorkDir holds restores (default a temporary directory, removed).
	WorkDir string
	// Damage is how many objects corruption damages (default 5).
	Damage     int
	Seed       uint64
	NoRecord   bool
	SortMemory int64
	Progress   func(scenario, step string)
	// RestoreProgress is told the bytes and files of the drill's restores
	// (nil: silent).
	RestoreProgress snapshot.Progress
}

// Run runs the scenarios against r (never changing an object of it) and
// records the report under drills/ unless NoRecord.
func Run(ctx context.Context, r *repo.Repository, opts Options) (*Report, error) {
	if len(opts.Scenarios) == 0 {
		opts.Scenarios = []string{TotalLoss}
	}
	if slices.Contains(opts.Scenarios, "all") {
		opts.Scenarios = All
	}
	for _, s := range opts.Scenarios {
		if !slices.Contains(All, s) {
			return nil, fmt.Errorf("drill: unknown scenario %q (want %s or all)", s, strings.Join(All, ", "))
		}
	}
	if opts.Damage <= 0 {
		opts.Damage = 5
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	work := opts.WorkDir
	if work == "" {
		tmp, err := os.MkdirTemp("", "strata-drill-")
		if err != nil {
			return nil, fmt.Errorf("drill: %w", err)
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	host, _ := os.Hostname()
	rep := &Report{Time: time.Now().UTC(), Hostname: host, From: opts.FromLocation,
		RTOLimitSeconds: opts.RTO.Seconds(), RPOLimitSeconds: opts.RPO.Seconds()}
	rep.OK = true
	for i, name := range opts.Scenarios {
		d := &driller{r: r, opts: opts, name: name, work: filepath.Join(work, fmt.Sprintf("%d-%s", i, name))}
		if err := os.MkdirAll(d.work, 0o700); err != nil {
			return nil, fmt.Errorf("drill: %w", err)
		}
		var sc ScenarioReport
		switch name {
		case TotalLoss:
			sc = d.recover(ctx, false)
		case SiteLoss:
			sc = d.recover(ctx, true)
		case Corruption:
			sc = d.corruption(ctx)
		case DiskFull:
			sc = d.diskFull(ctx)
		case Partition:
			sc = d.partition(ctx)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Scenarios = append(rep.Scenarios, sc)
		rep.OK = rep.OK && sc.OK
		os.RemoveAll(d.work)
	}
	if !opts.NoRecord {
		if _, _, err := r.SaveJSON(ctx, repo.PrefixDrills, rep); err != nil {
			return rep, fmt.Errorf("drill: record the report: %w", err)
		}
	}
	return rep, nil
}

// driller runs one scenario.
type driller struct {
	r     *repo.Repository
	opts  Options
	name  string
	work  string
	steps []Step
}

// step runs f as a timed step; it reports whether it passed.
func (d *driller) step(name string, f func() (string, error)) bool {
	if d.opts.Progress != nil {
		d.opts.Progress(d.name, name)
	}
	st := verify.RunStep(name, f)
	d.steps = append(d.steps, st)
	return st.OK
}

func (d *driller) report() ScenarioReport {
	sc := ScenarioReport{Name: d.name, OK: true, Steps: d.steps}
	for _, st := range d.steps {
		sc.OK = sc.OK && st.OK
	}
	return sc
}

// newestMutation is the newest durable mutation or heartbeat time of r's
// log (false without a log): what a total loss could lose up to, and what
// the -DUR targets count back from.
func newestMutation(ctx context.Context, r *repo.Repository) (time.Time, bool) {
	tl, err := snapshot.LoadTimeline(ctx, r, 0)
	if err != nil {
		return time.Time{}, false
	}
	var newest time.Time
	if runs := tl.Coverage.Runs; len(runs) > 0 {
		newest = runs[len(runs)-1].Last.Time.GoTime()
	}
	if hb := tl.Heartbeat; hb != nil && hb.Time.After(newest) {
		newest = hb.Time
	}
	return newest, !newest.IsZero()
}

// recover is total-loss (from the mirror as it is, or fetched first) and
// site-loss (the mirror fetched to new storage: the primary's site is gone):
// restore the newest point, check it, start and smoke-test it.
func (d *driller) recover(ctx context.Context, siteLoss bool) ScenarioReport {
	var src *repo.Repository
	fetch := d.opts.FetchFirst || siteLoss
	if !d.step("open mirror", func() (string, error) {
		switch {
		case d.opts.From != nil:
			m, err := d.opts.Open(ctx, NewOverlay(d.opts.From))
			if err != nil {
				return "", fmt.Errorf("open the mirror %s: %w", d.opts.FromLocation, err)
			}
			src = m
			return "mirror " + d.opts.FromLocation, nil
		case siteLoss:
			return "", errors.New("site-loss needs a mirror (--from URL): with the site gone, only a mirror is left")
		default:
			m, err := d.opts.Open(ctx, NewOverlay(d.r.Backend()))
			if err != nil {
				return "", err
			}
			src = m
			return "no --from: the primary's store stands in for the mirror (give --from to rehearse a real total loss)", nil
		}
	}) {
		return d.report()
	}
	if fetch && !d.step("fetch", func() (string, error) {
		dir := filepath.Join(d.work, "fetched")
		be, err := backend.Create(ctx, dir)
		if err != nil {
			return "", err
		}
		res, err := mirror.New(src, be, mirror.Options{}).Run(ctx)
		if err != nil {
			return "", fmt.Errorf("fetch the mirror: %w", err)
		}
		local, err := d.opts.Open(ctx, be)
		if err != nil {
			return "", err
		}
		src = local
		return fmt.Sprintf("%d objects, %d bytes copied to %s", res.CopiedObjects, res.CopiedBytes, dir), nil
	}) {
		return d.report()
	}
	dir := filepath.Join(d.work, "restore")
	var point time.Time
	var lsn uint64
	if !d.step("restore", func() (string, error) {
		detail, t, l, err := restoreNewest(ctx, src, dir, d.opts)
		point, lsn = t, l
		return detail, err
	}) {
		return d.report()
	}
	d.step("integrity", func() (string, error) { return checkDir(ctx, dir, d.opts) })
	if d.opts.StartCmd != "" {
		d.step("start", func() (string, error) { return runCmd(ctx, d.opts.StartCmd, dir) })
	}
	if d.opts.SmokeCmd != "" {
		d.step("smoke", func() (string, error) { return runCmd(ctx, d.opts.SmokeCmd, dir) })
	}
	sc := d.report()
	for _, st := range sc.Steps {
		sc.RTOSeconds += st.Seconds
	}
	if newest, ok := newestMutation(ctx, d.r); ok && !point.IsZero() {
		sc.RPOSeconds = max(newest.Sub(point).Seconds(), 0)
	}
	if d.opts.RTO > 0 && sc.RTOSeconds > d.opts.RTO.Seconds() {
		sc.OK = false
		sc.Steps = append(sc.Steps, Step{Name: "rto", OK: false, Detail: fmt.Sprintf("RTO %.1fs is over the limit %s", sc.RTOSeconds, d.opts.RTO)})
	}
	if d.opts.RPO > 0 && sc.RPOSeconds > d.opts.RPO.Seconds() {
		sc.OK = false
		sc.Steps = append(sc.Steps, Step{Name: "rpo", OK: false, Detail: fmt.Sprintf("RPO %.1fs is over the limit %s", sc.RPOSeconds, d.opts.RPO)})
	}
	_ = lsn
	if !siteLoss {
		sc.Targets = d.targets(ctx, src)
		for _, tt := range sc.Targets {
			sc.OK = sc.OK && tt.OK
		}
	}
	return sc
}

// restoreNewest restores the newest point r reaches into dir: the log's end
// when there is a window, else the newest snapshot at its cut.
func restoreNewest(ctx context.Context, r *repo.Repository, dir string, opts Options) (string, time.Time, uint64, error) {
	tl, err := snapshot.LoadTimeline(ctx, r, 0)
	if err == nil {
		if end, _, ok := tl.Reachable(); ok && len(tl.Windows()) > 0 {
			ps, err := snapshot.StateAt(ctx, r, tl, snapshot.PointOptions{Target: snapshot.Target{LSN: end.LSN, HasLSN: true}, MemLimit: opts.SortMemory})
			if err != nil {
				return "", time.Time{}, 0, err
			}
			res, err := snapshot.RestoreSnapshot(ctx, r, ps.Base.Entry, snapshot.SnapshotRestoreOptions{RestoreOptions: snapshot.RestoreOptions{Target: dir, Progress: opts.RestoreProgress}, State: ps})
			if err != nil {
				return "", time.Time{}, 0, err
			}
			return fmt.Sprintf("snapshot %s plus %d log records to lsn %d (%s): %d bytes", ps.Base.ID.Short(), ps.Replay.Applied, end.LSN, end.TS, res.Bytes),
				end.Time.GoTime(), end.LSN, nil
		}
	} else if !errors.Is(err, oplog.ErrNoLog) {
		return "", time.Time{}, 0, err
	}
	e, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{})
	if err != nil {
		return "", time.Time{}, 0, err
	}
	res, err := snapshot.RestoreSnapshot(ctx, r, e, snapshot.SnapshotRestoreOptions{RestoreOptions: snapshot.RestoreOptions{Target: dir, Progress: opts.RestoreProgress}})
	if err != nil {
		return "", time.Time{}, 0, err
	}
	return fmt.Sprintf("snapshot %s (no log to replay): %d bytes", e.ID.Short(), res.Bytes), e.Time, 0, nil
}

// targets measures the recovery-time table: each target restored from src.
func (d *driller) targets(ctx context.Context, src *repo.Repository) []TargetTime {
	var out []TargetTime
	newest, hasLog := newestMutation(ctx, src)
	for i, tgt := range d.opts.Targets {
		tt := TargetTime{Target: tgt}
		start := time.Now()
		dir := filepath.Join(d.work, fmt.Sprintf("target-%d", i))
		err := func() error {
			if tgt == "latest" {
				detail, t, lsn, err := restoreNewest(ctx, src, dir, d.opts)
				tt.Detail, tt.Point, tt.LSN = detail, t.UTC().Format(time.RFC3339Nano), lsn
				if err != nil {
					return err
				}
				_, err = checkDir(ctx, dir, d.opts) // every row: restore, replay and check
				return err
			}
			dur, err := time.ParseDuration(strings.TrimPrefix(tgt, "-"))
			if err != nil || !strings.HasPrefix(tgt, "-") {
				return fmt.Errorf("target %q: want latest or -DURATION (e.g. -2h)", tgt)
			}
			if !hasLog {
				return errors.New("no log: only the newest snapshot is a recovery point")
			}
			at := newest.Add(-dur)
			tt.Point = at.UTC().Format(time.RFC3339Nano)
			tl, err := snapshot.LoadTimeline(ctx, src, 0)
			if err != nil {
				return err
			}
			ps, err := snapshot.StateAt(ctx, src, tl, snapshot.PointOptions{Target: snapshot.Target{At: &at}, MemLimit: d.opts.SortMemory})
			if err != nil {
				return err
			}
			tt.LSN = ps.Replay.LastLSN
			if _, err := snapshot.RestoreSnapshot(ctx, src, ps.Base.Entry, snapshot.SnapshotRestoreOptions{RestoreOptions: snapshot.RestoreOptions{Target: dir, Progress: d.opts.RestoreProgress}, State: ps}); err != nil {
				return err
			}
			_, err = checkDir(ctx, dir, d.opts)
			return err
		}()
		tt.Seconds, tt.OK = time.Since(start).Seconds(), err == nil
		if err != nil {
			tt.Detail = err.Error()
		}
		os.RemoveAll(dir)
		out = append(out, tt)
	}
	return out
}

// checkDir runs the graph integrity check over a restored directory.
func checkDir(ctx context.Context, dir string, opts Options) (string, error) {
	detail, _, err := verify.CheckDir(ctx, dir, opts.SortMemory, "")
	return detail, err
}

func runCmd(ctx context.Context, command, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", strings.ReplaceAll(command, "{dir}", dir))
	cmd.Env = append(os.Environ(), "STRATA_RESTORE_DIR="+dir)
	out, err := cmd.CombinedOutput()
	tail := strings.TrimSpace(string(out))
	if len(tail) > 300 {
		tail = "…" + tail[len(tail)-300:]
	}
	if err != nil {
		return "", fmt.Errorf("%q: %v: %s", command, err, tail)
	}
	return tail, nil
}

// corruption damages random objects of an overlay of the repository: check
// must find every one, and a repair from the mirror must restore a passing
// state.
func (d *driller) corruption(ctx context.Context) ScenarioReport {
	ov := NewOverlay(d.r.Backend())
	var rr *repo.Repository
	var damaged []string
	if !d.step("damage", func() (string, error) {
		var err error
		if rr, err = d.opts.Open(ctx, ov); err != nil {
			return "", err
		}
		var keys []string
		for _, prefix := range []string{repo.PrefixData, repo.PrefixIndex, repo.PrefixSnapshots, repo.PrefixOplog} {
			_ = ov.List(ctx, prefix+"/", func(oi backend.ObjectInfo) error {
				if !strings.Contains(oi.Key, "/heartbeats/") && oi.Size > 0 {
					keys = append(keys, oi.Key)
				}
				return nil
			})
		}
		if len(keys) == 0 {
			return "", errors.New("the repository holds no objects to damage")
		}
		rng := rand.New(rand.NewPCG(d.opts.Seed, 1))
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		damaged = keys[:min(d.opts.Damage, len(keys))]
		slices.Sort(damaged)
		for _, k := range damaged {
			pos := rng.IntN(1 << 30)
			if err := ov.Damage(ctx, k, func(b []byte) []byte { b[pos%len(b)] ^= 0x55; return b }); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("flipped a byte in %d objects (seed %d): %s", len(damaged), d.opts.Seed, strings.Join(damaged, ", ")), nil
	}) {
		return d.report()
	}
	d.step("check finds every one", func() (string, error) {
		res, err := verify.Check(ctx, rr, verify.CheckOptions{ReadData: true})
		if err != nil {
			return "", err
		}
		named := map[string]bool{}
		for _, p := range res.Problems {
			named[p.Object] = true
		}
		var missed []string
		for _, k := range damaged {
			if !named[k] {
				missed = append(missed, k)
			}
		}
		if len(missed) > 0 {
			return "", fmt.Errorf("check did not name %d damaged objects: %s", len(missed), strings.Join(missed, ", "))
		}
		return fmt.Sprintf("%d problems name all %d damaged objects", len(res.Problems), len(damaged)), nil
	})
	if d.opts.From == nil {
		d.step("repair", func() (string, error) {
			return "skipped: no mirror (--from URL) to repair from", nil
		})
		return d.report()
	}
	d.step("repair from the mirror", func() (string, error) { return d.repair(ctx, rr, damaged) })
	d.step("check after repair", func() (string, error) {
		res, err := verify.Check(ctx, rr, verify.CheckOptions{ReadData: true})
		if err != nil {
			return "", err
		}
		if !res.OK {
			return "", fmt.Errorf("%d problems remain (first: %s: %s)", len(res.Problems), res.Problems[0].Object, res.Problems[0].Kind)
		}
		return "check --read-data passes", nil
	})
	return d.report()
}

// repair runs strata repair from the mirror against the overlay: it finds
// the damage itself (check --read-data) and copies back verified objects.
func (d *driller) repair(ctx context.Context, rr *repo.Repository, damaged []string) (string, error) {
	res, err := mirror.Repair(ctx, rr, d.opts.From, mirror.RepairOptions{})
	if err != nil {
		return "", err
	}
	fixed := map[string]bool{}
	for _, o := range res.Repaired {
		fixed[o.Object] = true
	}
	var missed []string
	for _, k := range damaged {
		if !fixed[k] {
			missed = append(missed, k)
		}
	}
	if len(missed) > 0 || !res.OK {
		return "", fmt.Errorf("repaired %d objects; not repaired: %s (%d unrepairable)", len(res.Repaired), strings.Join(missed, ", "), len(res.Unrepairable))
	}
	return fmt.Sprintf("%d objects repaired from %s", len(res.Repaired), d.opts.FromLocation), nil
}

// sampleSource writes a small tree to back up in the write scenarios.
func sampleSource(dir string, seed uint64) (string, error) {
	src := filepath.Join(dir, "source")
	if err := os.MkdirAll(src, 0o700); err != nil {
		return "", err
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	for i := range 4 {
		b := make([]byte, 512<<10)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("file-%d", i)), b, 0o600); err != nil {
			return "", err
		}
	}
	return src, nil
}

// faults are the write scenarios' store: the tests' fault wrappers (a
// store that fills up, one that can be cut) over an overlay of the
// repository.
type faults struct {
	full  *fault.FullStore
	flaky *fault.FlakyStore
	// cutAt is the partition armed for the next pack save, if any.
	cutAt *atomic.Pointer[partition]
}

// newFaults wraps be in the write scenarios' fault wrappers.
func newFaults(be backend.Backend) faults {
	fs := faults{full: fault.Full(be, -1), cutAt: new(atomic.Pointer[partition])}
	fs.flaky = fault.Flaky(fs.full, fault.FlakyOptions{OnCall: func(op fault.Op, key string) {
		if p := fs.cutAt.Load(); p != nil && op == fault.OpSave && strings.HasPrefix(key, repo.PrefixData+"/") {
			p.fire() // the save that fires it fails: the cut comes mid-backup
		}
	}})
	return fs
}

// prepareWrites is the write scenarios' first step: the faulty overlay,
// the repository opened on it, and a small source to back up.
func (d *driller) prepareWrites(ctx context.Context) (fs faults, rr *repo.Repository, src string, ok bool) {
	fs = newFaults(NewOverlay(d.r.Backend()))
	ok = d.step("prepare", func() (string, error) {
		var err error
		if rr, err = d.opts.Open(ctx, fs.flaky); err != nil {
			return "", err
		}
		src, err = sampleSource(d.work, d.opts.Seed)
		return "an overlay of the repository behind fault wrappers, and a 2 MiB source", err
	})
	return fs, rr, src, ok
}

// diskFull: a backup into a store that runs out of space fails cleanly,
// the repository stays checkable, and the next backup succeeds.
func (d *driller) diskFull(ctx context.Context) ScenarioReport {
	fs, rr, src, ok := d.prepareWrites(ctx)
	if !ok {
		return d.report()
	}
	fs.full.SetLimit(256 << 10)
	d.step("backup into a full store", func() (string, error) {
		_, err := snapshot.Backup(ctx, rr, snapshot.BackupOptions{Paths: []string{src}})
		if err == nil {
			return "", errors.New("the backup succeeded into a store without space")
		}
		if !errors.Is(err, backend.ErrNoSpace) {
			return "", fmt.Errorf("failed, but not as out of space: %w", err)
		}
		return "failed cleanly: " + err.Error(), nil
	})
	d.step("check", func() (string, error) { return checkNoDamage(ctx, d.opts, rr) })
	fs.full.SetLimit(-1)
	d.step("next backup", func() (string, error) { return backupAndRestore(ctx, rr, src, d.work) })
	return d.report()
}

// partition: the store is cut off at a backup's first pack save and drops
// every call from then on; the backup fails cleanly, one with retries gets
// through a cut that heals within 0.4 s, and once the network heals the
// repository checks and a later backup completes.
func (d *driller) partition(ctx context.Context) ScenarioReport {
	fs, rr, src, ok := d.prepareWrites(ctx)
	if !ok {
		return d.report()
	}
	d.step("backup during a partition", func() (string, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		plan := fs.armPartition(0)
		_, err := snapshot.Backup(ctx, rr, snapshot.BackupOptions{Paths: []string{src}})
		if cut := fs.endPartition(plan); err == nil {
			return "", fmt.Errorf("the backup succeeded through the partition (cut: %v)", cut)
		}
		if !errors.Is(err, fault.ErrInjected) {
			return "", fmt.Errorf("failed, but not from the partition: %w", err)
		}
		return "failed cleanly: " + err.Error(), nil
	})
	d.step("backup through a short partition", func() (string, error) {
		// With retries (backoff and jitter, as object stores get), a cut
		// that heals within the retry budget costs time, not the backup.
		// Twelve tries: the full-jitter waits of eight add up to less
		// than the partition in about one run of 2,000 (simulated).
		retried, err := d.opts.Open(ctx, backend.Retry(fs.flaky, backend.RetryOptions{Base: 50 * time.Millisecond, Max: time.Second, Attempts: 12}))
		if err != nil {
			return "", err
		}
		plan := fs.armPartition(400 * time.Millisecond)
		res, err := snapshot.Backup(ctx, retried, snapshot.BackupOptions{Paths: []string{src}, Tags: []string{"drill-partition"}})
		cut := fs.endPartition(plan)
		if err != nil {
			return "", fmt.Errorf("the backup did not survive a 0.4 s partition: %w", err)
		}
		if !cut {
			return "", fmt.Errorf("snapshot %s saved no pack: the partition never happened", res.ID.Short())
		}
		return fmt.Sprintf("snapshot %s completed across a 0.4 s partition", res.ID.Short()), nil
	})
	d.step("check after healing", func() (string, error) { return checkNoDamage(ctx, d.opts, rr) })
	d.step("backup after healing", func() (string, error) { return backupAndRestore(ctx, rr, src, d.work) })
	return d.report()
}

// cutter is a store that a partition can cut off and heal.
type cutter interface {
	Cut()
	Heal()
}

// partition is a planned partition of a store: cut at the backup's first
// pack save (fire), healed heal after the cut (0: only at the end). The
// cut comes from the store's own call, never from a timer: a backup of
// the drill's small source takes about as long as the 10 ms a timer used
// to wait, so the cut often missed the backup, and a timer that ran while
// the step ended cut the store after the step had healed it (seen as a
// failed "backup after healing" in a test run). The heal's timer acts only
// under the plan's lock, and not once the plan has ended.
type partition struct {
	mu    sync.Mutex
	s     cutter
	heal  time.Duration
	ended bool
	cut   bool
	timer *time.Timer
}

// armPartition arms a partition of the flaky store for the next pack
// save.
func (fs faults) armPartition(heal time.Duration) *partition {
	p := &partition{s: fs.flaky, heal: heal}
	fs.cutAt.Store(p)
	return p
}

// endPartition disarms p and heals the store for good; it reports
// whether the cut happened.
func (fs faults) endPartition(p *partition) bool {
	fs.cutAt.CompareAndSwap(p, nil)
	return p.end()
}

// fire cuts the store, once, unless the plan has ended.
func (p *partition) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || p.cut {
		return
	}
	p.s.Cut()
	p.cut = true
	if p.heal > 0 {
		p.timer = time.AfterFunc(p.heal, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.ended {
				p.s.Heal()
			}
		})
	}
}

// end heals the store: once it returns, nothing the plan started cuts it
// again. It reports whether the cut happened.
func (p *partition) end() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ended = true
	if p.timer != nil {
		p.timer.Stop()
	}
	p.s.Heal()
	return p.cut
}

func checkNoDamage(ctx context.Context, opts Options, rr *repo.Repository) (string, error) {
	// A fresh handle: the one that failed may hold a half-written state.
	res, err := verify.Check(ctx, rr, verify.CheckOptions{})
	if err != nil {
		return "", err
	}
	if !res.OK {
		return "", fmt.Errorf("%d problems (first: %s: %s: %s)", len(res.Problems), res.Problems[0].Object, res.Problems[0].Kind, res.Problems[0].Detail)
	}
	return fmt.Sprintf("no damage (%d warnings: unreferenced leftovers prune removes)", len(res.Warnings)), nil
}

func backupAndRestore(ctx context.Context, rr *repo.Repository, src, work string) (string, error) {
	res, err := snapshot.Backup(ctx, rr, snapshot.BackupOptions{Paths: []string{src}})
	if err != nil {
		return "", err
	}
	out := filepath.Join(work, "restored")
	if _, err := snapshot.RestoreSnapshot(ctx, rr, snapshot.Entry{ID: res.ID, Snapshot: res.Snapshot},
		snapshot.SnapshotRestoreOptions{RestoreOptions: snapshot.RestoreOptions{Target: out, Verify: true}}); err != nil {
		return "", err
	}
	return fmt.Sprintf("snapshot %s stored and restored", res.ID.Short()), nil
}
