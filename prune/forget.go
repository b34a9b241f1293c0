package prune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// Errors of forget.
var (
	// ErrNoRule means forget was given no keep rule and no snapshot: it
	// would remove everything (restic keeps everything instead; strata
	// refuses unless AllowRemoveAll).
	ErrNoRule = errors.New("no keep rule given")
	// ErrPinned means a snapshot named for removal is needed by the PITR
	// window.
	ErrPinned = errors.New("needed by the PITR window")
)

// ReasonWindow is the match reported for snapshots the PITR window keeps.
const ReasonWindow = "oplog window"

// RepoPolicy is the plaintext of policy/<id>: retention settings that every
// later forget and prune honours until changed. Each object holds the
// complete settings; the newest one (by Time, then by id) wins.
type RepoPolicy struct {
	// KeepOplog is the PITR window as a Go duration ("168h"); "0s" or
	// empty: no window.
	KeepOplog string    `json:"keep_oplog"`
	Time      time.Time `json:"time"`
	Hostname  string    `json:"hostname,omitempty"`
}

// Window returns the PITR window length (0: none).
func (p RepoPolicy) Window() (time.Duration, error) {
	if p.KeepOplog == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(p.KeepOplog)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("policy keep_oplog %q: not a duration: %w", p.KeepOplog, repo.ErrCorrupt)
	}
	return d, nil
}

// LoadRepoPolicy returns the newest policy object; ok is false when the
// repository has none.
func LoadRepoPolicy(ctx context.Context, r *repo.Repository) (p RepoPolicy, ok bool, err error) {
	var ids []chunk.ID
	if err := r.List(ctx, repo.PrefixPolicy, func(id chunk.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return RepoPolicy{}, false, fmt.Errorf("list policy: %w", err)
	}
	var bestID chunk.ID
	for _, id := range ids {
		var q RepoPolicy
		err := r.LoadJSON(ctx, repo.PrefixPolicy, id, &q)
		if errors.Is(err, backend.ErrNotFound) {
			continue // replaced meanwhile
		}
		if err != nil {
			return RepoPolicy{}, false, err
		}
		if !ok || q.Time.After(p.Time) || q.Time.Equal(p.Time) && id.String() > bestID.String() {
			p, bestID, ok = q, id, true
		}
	}
	return p, ok, nil
}

// SaveRepoPolicy stores p as the newest policy (Time and Hostname filled in
// when unset).
func SaveRepoPolicy(ctx context.Context, r *repo.Repository, p RepoPolicy) (chunk.ID, error) {
	if p.Time.IsZero() {
		p.Time = time.Now().UTC()
	}
	if p.Hostname == "" {
		p.Hostname, _ = os.Hostname()
	}
	id, _, err := r.SaveJSON(ctx, repo.PrefixPolicy, p)
	if err != nil {
		return chunk.ID{}, fmt.Errorf("save policy: %w", err)
	}
	return id, nil
}

// ParseWindowDuration parses a --keep-oplog value: a Go duration ("168h",
// "90m") with days allowed as "d" ("7d", "1d12h"). Negative is refused.
func ParseWindowDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var days time.Duration
	if i := strings.IndexByte(t, 'd'); i >= 0 {
		n, err := time.ParseDuration(t[:i] + "h")
		if err != nil || strings.ContainsAny(t[:i], ".-+") {
			return 0, fmt.Errorf("--keep-oplog %q: want a duration like 168h, 7d or 36h30m", s)
		}
		days, t = 24*n, t[i+1:]
		if t == "" {
			t = "0s"
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("--keep-oplog %q: want a duration like 168h, 7d or 36h30m", s)
	}
	d += days
	if d < 0 {
		return 0, fmt.Errorf("--keep-oplog %q: negative", s)
	}
	return d, nil
}

// FormatWindowDuration renders d as stored: whole hours as "168h",
// anything else (0 included: "0s") as Go prints it.
func FormatWindowDuration(d time.Duration) string {
	if d != 0 && d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// OplogWindow is the PITR window on the newest generation's history: every
// second from Start to Newest must stay restorable.
type OplogWindow struct {
	Keep       time.Duration
	Generation uint64 // the newest generation; the window lies on its history
	// Newest is the ts of the newest mutation (the last record of the
	// history): the window is measured back from it, not from now, so a
	// log that stopped is never pruned for having stopped.
	Newest time.Time
	Start  time.Time // Newest - Keep
	// Base is the newest snapshot whose cut is at or before Start and that
	// the log replays (the base of the window's earliest point); HasBase
	// is false when no such snapshot exists (the window then keeps every
	// snapshot with a cut on the history, and the whole log).
	Base    chunk.ID
	HasBase bool
	// Snapshots are the snapshots the window keeps: Base and every
	// snapshot whose cut lies after Base's on the history.
	Snapshots []chunk.ID
	// LogAfter: the window's snapshots replay the history's records after
	// this lsn (the lowest lsn_start among them; 0 with no base: all).
	LogAfter uint64
}

// Contains reports whether the window keeps snapshot id.
func (w OplogWindow) Contains(id chunk.ID) bool { return slices.Contains(w.Snapshots, id) }

// Window returns the PITR window the repository's stored policy sets (the
// newest policy/ object's keep_oplog). ok is false when no window is set,
// or the repository holds no log records.
func Window(ctx context.Context, r *repo.Repository) (w OplogWindow, ok bool, err error) {
	p, found, err := LoadRepoPolicy(ctx, r)
	if err != nil || !found {
		return OplogWindow{}, false, err
	}
	keep, err := p.Window()
	if err != nil {
		return OplogWindow{}, false, err
	}
	return WindowOf(ctx, r, keep)
}

// WindowOf computes a window of length keep on the newest generation's
// history (whatever the stored policy says). ok is false when keep is 0 or
// the repository holds no log records.
//
// Which snapshots it keeps: restoring a point T of the window needs the
// newest snapshot whose cut is at or before T (then the log from its
// lsn_start on). For T = Start that is Base; for any later T it is Base or
// a snapshot with a cut after Base's. Keeping exactly the snapshots the
// restores would pick needs the same judgement as restore (replayable
// runs, gaps), so the window keeps the simplest set that surely contains
// them: Base and every snapshot with a cut after it on the history, those
// the log does not cover yet included (they become bases once it does).
// Base is chosen among snapshots the log replays (a snapshot behind a gap
// cannot restore the window), its ties at the same cut are not needed. A
// snapshot whose cut lies on another generation only (not on the newest
// history) is not in the window: restore follows the newest generation.
func WindowOf(ctx context.Context, r *repo.Repository, keep time.Duration) (w OplogWindow, ok bool, err error) {
	if keep <= 0 {
		return OplogWindow{}, false, nil
	}
	tl, err := snapshot.LoadTimeline(ctx, r, 0)
	if errors.Is(err, oplog.ErrNoLog) {
		return OplogWindow{}, false, nil
	}
	if err != nil {
		return OplogWindow{}, false, fmt.Errorf("PITR window: %w", err)
	}
	runs := tl.Coverage.Runs
	if len(runs) == 0 {
		return OplogWindow{}, false, nil
	}
	w = OplogWindow{Keep: keep, Generation: tl.History.Gen, Newest: runs[len(runs)-1].Last.Time.GoTime()}
	w.Start = w.Newest.Add(-keep)

	// Where each base's cut lies on the history: its position (lsn) and
	// time. A cut before the log lies before every time; one the log does
	// not reach yet, after every time.
	type placed struct {
		b      *snapshot.Base
		pos    uint64
		at     time.Time
		early  bool // before the log
		future bool // not reached by the log yet
	}
	var bases []placed
	for i := range tl.Bases {
		b := &tl.Bases[i]
		p := placed{b: b, pos: b.Cut.LSNEnd}
		switch {
		case b.BeforeLog:
			p.early = true
		case b.End.LSN != 0:
			p.pos, p.at = b.End.LSN, b.End.Time.GoTime()
		default:
			p.future = true
		}
		bases = append(bases, p)
	}
	// tl.Bases is ordered newest cut first: the first replayable base at or
	// before Start is the window's base.
	var base *placed
	for i := range bases {
		p := &bases[i]
		if p.b.Run >= 0 && !p.future && (p.early || !p.at.After(w.Start)) {
			base = p
			break
		}
	}
	logAfter, first := uint64(0), true
	for _, p := range bases {
		if base != nil && p.b.ID != base.b.ID && p.pos <= base.pos {
			continue
		}
		w.Snapshots = append(w.Snapshots, p.b.ID)
		start := p.b.Cut.LSNStart
		if p.early {
			start = 0
		}
		if first || start < logAfter {
			logAfter, first = start, false
		}
	}
	if base != nil {
		w.Base, w.HasBase, w.LogAfter = base.b.ID, true, logAfter
	}
	return w, true, nil
}

// ForgetOptions say what forget removes.
type ForgetOptions struct {
	Policy Policy
	// GroupBy splits the snapshots into groups the policy is applied to
	// separately; the zero value makes one group (restic's --group-by '').
	// DefaultGroupBy is restic's default, host and paths.
	GroupBy GroupBy
	// Filter selects the snapshots the policy considers (restic's --host,
	// --tag, --path); the others are left alone.
	Filter snapshot.Filter
	// IDs, when given, are removed (no policy applies; Policy must be
	// empty). A snapshot the PITR window needs is refused (ErrPinned).
	IDs []chunk.ID
	// KeepOplog, when set, is a new PITR window: this run honours it and
	// Execute stores it for later runs (policy/). Nil: the stored window.
	// It only ever keeps snapshots: with no other rule, nothing is
	// removed.
	KeepOplog *time.Duration
	// AllowRemoveAll lets an empty policy remove every selected snapshot
	// (but those the PITR window needs).
	AllowRemoveAll bool
	// Now is the clock for the --keep-within* rules (zero: time.Now()).
	Now time.Time
}

// ForgetGroup is one group's decision, in restic's shape: keep and remove
// newest first, one reason per kept snapshot.
type ForgetGroup struct {
	Key     GroupKey
	Keep    []snapshot.Entry
	Remove  []snapshot.Entry
	Reasons []Reason
}

// ForgetPlan is what forget will do; Execute does it.
type ForgetPlan struct {
	Policy Policy
	Groups []ForgetGroup
	// Window is the PITR window honoured (nil: none).
	Window *OplogWindow
	// KeepOplog is the window length honoured (0: none); SavePolicy says
	// Execute stores it first, as it differs from the stored one.
	KeepOplog  time.Duration
	SavePolicy bool
	// Remove is every snapshot to remove, oldest first.
	Remove []snapshot.Entry
	// Explicit: the snapshots were named (IDs), not chosen by a policy.
	Explicit bool
}

// PlanForget decides which snapshots to remove; it changes nothing.
func PlanForget(ctx context.Context, r *repo.Repository, o ForgetOptions) (*ForgetPlan, error) {
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	if len(o.IDs) > 0 && !o.Policy.Empty() {
		return nil, errors.New("forget: give snapshot ids or keep rules, not both")
	}
	if len(o.IDs) == 0 && o.Policy.Empty() && !o.AllowRemoveAll && o.KeepOplog == nil {
		return nil, fmt.Errorf("forget: %w", ErrNoRule)
	}
	plan := &ForgetPlan{Policy: o.Policy, Explicit: len(o.IDs) > 0}

	stored, hasStored, err := LoadRepoPolicy(ctx, r)
	if err != nil {
		return nil, err
	}
	storedKeep := time.Duration(0)
	if hasStored {
		if storedKeep, err = stored.Window(); err != nil {
			return nil, err
		}
	}
	plan.KeepOplog = storedKeep
	if o.KeepOplog != nil {
		plan.KeepOplog = *o.KeepOplog
		plan.SavePolicy = !hasStored || *o.KeepOplog != storedKeep
	}
	if plan.KeepOplog > 0 {
		w, ok, err := WindowOf(ctx, r, plan.KeepOplog)
		if err != nil {
			return nil, err
		}
		if ok {
			plan.Window = &w
		}
	}

	all, err := snapshot.List(ctx, r)
	if err != nil {
		return nil, err
	}
	if plan.Explicit {
		return plan, plan.explicit(all, o)
	}
	if o.Policy.Empty() && !o.AllowRemoveAll {
		return plan, nil // only a new window to store
	}
	var selected []snapshot.Entry
	for _, e := range all {
		if o.Filter.Match(e.Snapshot) {
			selected = append(selected, e)
		}
	}
	pinned := map[chunk.ID]string{}
	if plan.Window != nil {
		for _, id := range plan.Window.Snapshots {
			pinned[id] = ReasonWindow
		}
	}
	for _, g := range GroupSnapshots(selected, o.GroupBy) {
		keep, remove, reasons := Apply(g.Snapshots, o.Policy, ApplyOptions{Now: o.Now, Pinned: pinned, RemoveAll: o.AllowRemoveAll})
		plan.Groups = append(plan.Groups, ForgetGroup{Key: g.Key, Keep: keep, Remove: remove, Reasons: reasons})
		plan.Remove = append(plan.Remove, remove...)
	}
	sortOldestFirst(plan.Remove)
	return plan, nil
}

// explicit plans the removal of the snapshots o.IDs names.
func (plan *ForgetPlan) explicit(all []snapshot.Entry, o ForgetOptions) error {
	byID := map[chunk.ID]snapshot.Entry{}
	for _, e := range all {
		byID[e.ID] = e
	}
	seen := map[chunk.ID]bool{}
	for _, id := range o.IDs {
		e, ok := byID[id]
		if !ok {
			return fmt.Errorf("forget snapshot %s: %w", id.Short(), snapshot.ErrNoSnapshot)
		}
		if plan.Window != nil && plan.Window.Contains(id) {
			return fmt.Errorf("forget snapshot %s: %w (--keep-oplog %s: every point since %s); shorten the window with --keep-oplog first",
				id.Short(), ErrPinned, FormatWindowDuration(plan.KeepOplog), plan.Window.Start.UTC().Format(time.RFC3339))
		}
		if !seen[id] {
			seen[id] = true
			plan.Remove = append(plan.Remove, e)
		}
	}
	sortOldestFirst(plan.Remove)
	for _, g := range GroupSnapshots(plan.Remove, o.GroupBy) {
		rm := slices.Clone(g.Snapshots)
		SortNewestFirst(rm)
		plan.Groups = append(plan.Groups, ForgetGroup{Key: g.Key, Remove: rm})
	}
	return nil
}

func sortOldestFirst(list []snapshot.Entry) {
	SortNewestFirst(list)
	slices.Reverse(list)
}

// ForgetResult is a finished forget.
type ForgetResult struct {
	// Deletion is the deletion record written (HasDeletion false when
	// nothing was removed).
	Deletion    chunk.ID
	HasDeletion bool
	Removed     int
	// PolicySaved: a new policy object holds the window.
	PolicySaved bool
}

// Execute stores the new window (when it changed), then writes one
// deletion record naming every snapshot to remove, then removes them. A
// snapshot removed meanwhile (a concurrent forget) is not an error.
func (plan *ForgetPlan) Execute(ctx context.Context, r *repo.Repository) (ForgetResult, error) {
	var res ForgetResult
	if plan.SavePolicy {
		if _, err := SaveRepoPolicy(ctx, r, RepoPolicy{KeepOplog: FormatWindowDuration(plan.KeepOplog)}); err != nil {
			return res, err
		}
		res.PolicySaved = true
	}
	if len(plan.Remove) == 0 {
		return res, nil
	}
	keys := make([]string, 0, len(plan.Remove))
	for _, e := range plan.Remove {
		keys = append(keys, repo.ObjectKey(repo.PrefixSnapshots, e.ID))
	}
	slices.Sort(keys)
	reason := "forget " + plan.Policy.String()
	if plan.Explicit {
		reason = "forget: snapshots named on the command line"
	}
	id, err := r.SaveDeletion(ctx, repo.Deletion{Kind: repo.DeletionForget, Reason: reason, Removed: keys})
	if err != nil {
		return res, fmt.Errorf("forget: %w", err)
	}
	res.Deletion, res.HasDeletion = id, true
	for _, k := range keys {
		if err := r.Backend().Remove(ctx, k); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return res, fmt.Errorf("forget: remove %s: %w", k, err)
		}
		res.Removed++
	}
	return res, nil
}
