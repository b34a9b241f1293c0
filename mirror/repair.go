package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/verify"
)

// This file holds repair (SPEC sections 3, 6 and 7): the reverse of a
// mirror run, for damage. Objects are named by the hash of their bytes, so a
// healthy replica holds, under the same name, exactly the bytes a missing or
// corrupt object of the primary must have; repair copies them back.

// ErrNotReplica means the store repair was pointed at holds no repository
// (an empty store or one holding only key files).
var ErrNotReplica = errors.New("is not a replica of this repository")

// KindMissing is the kind of a repaired or unrepairable object that check
// did not name itself: the mirror holds it and the primary does not (a
// dropped log segment, a lost snapshot, or what a missing-blob problem
// against a snapshot comes down to).
const KindMissing = "missing"

// RepairOptions tune Repair. The zero value is usable.
type RepairOptions struct {
	// DryRun decides and reports everything but writes nothing: no object,
	// no lease, and no second check.
	DryRun bool
	// Check tunes both checks (before and after); ReadData is always set,
	// Subset always cleared, since only whole-pack reads find corrupt packs.
	Check verify.CheckOptions
}

// RepairedObject is one object written back (or, in a dry run, that would
// be) with the bytes its name demands.
type RepairedObject struct {
	Object string `json:"object"`
	// Kind is the check problem that named the object (hash-mismatch,
	// missing-pack, ...), or KindMissing.
	Kind string `json:"kind"`
}

// RepairResult is what Repair did.
type RepairResult struct {
	// OK: nothing is left unrepairable and the final check passed.
	OK       bool             `json:"ok"`
	DryRun   bool             `json:"dry_run,omitempty"`
	Repaired []RepairedObject `json:"repaired"`
	// Unrepairable lists what stays damaged: objects the mirror lacks or
	// holds damaged too, and every problem the final check still finds.
	Unrepairable []verify.Problem `json:"unrepairable"`
	// CheckOK: check --read-data passes after the repair (in a dry run, or
	// when nothing was written, the first check's verdict).
	CheckOK bool `json:"check_ok"`
	// Before and After are the two checks (After is nil when no second
	// check ran).
	Before *verify.CheckResult `json:"-"`
	After  *verify.CheckResult `json:"-"`
}

// repairItem is one object to fetch from the mirror.
type repairItem struct {
	key     string
	kind    string // why: a problem kind or KindMissing
	damaged bool   // the primary holds bytes that do not match the name
	rank    int    // copy phase, see phaseOrder
}

// Repair replaces missing and corrupt objects of r with the healthy copies
// the replica from holds:
//
//  1. from must be r's replica (a byte-identical config); anything else is
//     refused (ErrNotReplica, or repo.ErrOtherRepository).
//  2. check --read-data runs on r. Every object a problem names whose bytes
//     do not hash to its name, or which is missing, is fetched. So is every
//     object the mirror holds and r lacks — a deleted pack, index object,
//     snapshot or log segment; this is how damage check reports against a
//     referencing object (a missing-blob naming a snapshot, an oplog-gap
//     naming a generation) is repaired — except objects a deletion record
//     removed (the mirror follows those only after its delay), leases,
//     heartbeats a newer one replaced, and verification and drill records
//     (a verify run on the mirror records there alone; not damage).
//  3. Each fetched object must hash to the id in its name before it is
//     written; one the mirror lacks, or holds damaged too, is unrepairable.
//     A damaged object is removed and then saved anew (stores are
//     create-only). Objects are written in mirror copy order (packs before
//     index objects before snapshots).
//  4. check --read-data runs again; what it still finds is unrepairable.
//
// Repair holds the exclusive prune lease while it writes, so no prune
// removes what it brings back. The error is for operational failures;
// damage that stays is in the result.
func Repair(ctx context.Context, r *repo.Repository, from backend.Backend, opts RepairOptions) (*RepairResult, error) {
	where := backend.Location(from)
	replica, err := r.CheckReplica(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("repair from %s: %w", where, err)
	}
	if !replica {
		return nil, fmt.Errorf("repair from %s: it %w (it holds no repository config)", where, ErrNotReplica)
	}
	var lease *repo.Lease
	if !opts.DryRun {
		if lease, err = r.AcquireLease(ctx, repo.LeasePrune, "", true, 0); err != nil {
			return nil, fmt.Errorf("repair: %w", err)
		}
		defer lease.Release(context.WithoutCancel(ctx))
	}

	copts := opts.Check
	copts.ReadData, copts.Subset = true, nil
	before, err := verify.Check(ctx, r, copts)
	if err != nil {
		return nil, fmt.Errorf("repair: %w", err)
	}
	res := &RepairResult{DryRun: opts.DryRun, Before: before, CheckOK: before.OK,
		Repaired: []RepairedObject{}, Unrepairable: []verify.Problem{}}

	items, err := planRepair(ctx, r, from, before)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		if lease != nil {
			if err := lease.Valid(); err != nil {
				return nil, fmt.Errorf("repair: %w", err)
			}
		}
		done, detail, err := repairOne(ctx, r.Backend(), from, it, opts.DryRun)
		if err != nil {
			return nil, fmt.Errorf("repair %s from %s: %w", it.key, where, err)
		}
		if done {
			res.Repaired = append(res.Repaired, RepairedObject{Object: it.key, Kind: it.kind})
		} else {
			res.Unrepairable = append(res.Unrepairable, verify.Problem{Object: it.key, Kind: it.kind, Detail: detail})
		}
	}

	if opts.DryRun || len(res.Repaired) == 0 {
		// Nothing was written: the first check stands. With nothing to
		// copy, every problem it found stays. A dry run that would copy
		// lists only the objects it cannot fetch: the other problems may
		// be consequences the copies cure (a gap a dropped segment left, a
		// snapshot whose blobs a lost index object listed), which only the
		// check after a real repair can tell.
		if len(res.Repaired) == 0 {
			res.Unrepairable = appendRemaining(res.Unrepairable, before.Problems)
		}
	} else {
		after, err := verify.Check(ctx, r, copts)
		if err != nil {
			return nil, fmt.Errorf("repair: check again: %w", err)
		}
		res.After, res.CheckOK = after, after.OK
		res.Unrepairable = appendRemaining(res.Unrepairable, after.Problems)
	}
	res.OK = res.CheckOK && len(res.Unrepairable) == 0
	return res, nil
}

// appendRemaining adds the problems whose object and kind are not listed yet.
func appendRemaining(list, problems []verify.Problem) []verify.Problem {
	seen := map[[2]string]bool{}
	for _, p := range list {
		seen[[2]string{p.Object, p.Kind}] = true
	}
	for _, p := range problems {
		if !seen[[2]string{p.Object, p.Kind}] {
			seen[[2]string{p.Object, p.Kind}] = true
			list = append(list, p)
		}
	}
	return list
}

// planRepair decides what to fetch from the mirror, in copy order.
func planRepair(ctx context.Context, r *repo.Repository, from backend.Backend, before *verify.CheckResult) ([]repairItem, error) {
	be := r.Backend()
	primary := map[string]bool{}
	err := be.List(ctx, "", func(fi backend.ObjectInfo) error {
		primary[fi.Key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repair: list the repository: %w", err)
	}
	mirrored := map[string]bool{}
	err = from.List(ctx, "", func(fi backend.ObjectInfo) error {
		if !isLease(fi.Key) {
			mirrored[fi.Key] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("repair: list %s: %w", backend.Location(from), err)
	}

	planned := map[string]*repairItem{}
	for _, p := range before.Problems {
		k, ok := classify(p.Object)
		if !ok || p.Object == repo.ConfigKey {
			continue // "oplog/<generation>": the sweep below fills gaps
		}
		if planned[p.Object] != nil {
			continue // the first problem (check sorts them) names the kind
		}
		it := &repairItem{key: p.Object, kind: p.Kind, rank: rank(k.phase)}
		if primary[p.Object] {
			stored, err := backend.LoadAll(ctx, be, p.Object)
			switch {
			case errors.Is(err, backend.ErrNotFound):
			case err != nil:
				return nil, fmt.Errorf("repair: %w", err)
			case chunk.ObjectID(stored) == k.id:
				// Its bytes are what its name demands: the mirror's copy is
				// the same, so copying changes nothing. (A snapshot with
				// a missing-blob problem: the sweep fetches what it lacks.)
				continue
			default:
				it.damaged = true
			}
		}
		planned[p.Object] = it
	}

	removed, err := removedKeys(ctx, r, from, primary, mirrored)
	if err != nil {
		return nil, err
	}
	heartbeatGens := map[uint64]bool{}
	for key := range primary {
		if k, ok := classify(key); ok && k.phase == phaseHeartbeats {
			heartbeatGens[k.gen] = true
		}
	}
	for key := range mirrored {
		k, ok := classify(key)
		switch {
		case primary[key], planned[key] != nil, !ok, removed[key]:
			continue
		case k.phase == phaseVerifications || k.phase == phaseDrills:
			continue
		case k.phase == phaseHeartbeats && heartbeatGens[k.gen]:
			continue // the writer replaced it (heartbeats have no records)
		}
		planned[key] = &repairItem{key: key, kind: KindMissing, rank: rank(k.phase)}
	}

	items := make([]repairItem, 0, len(planned))
	for _, it := range planned {
		items = append(items, *it)
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].rank != items[j].rank {
			return items[i].rank < items[j].rank
		}
		return items[i].key < items[j].key
	})
	return items, nil
}

// rank is a phase's place in the copy order.
func rank(phase string) int {
	for i, ph := range phaseOrder {
		if ph.name == phase {
			return i
		}
	}
	return len(phaseOrder)
}

// removedKeys returns every key a deletion record (of either side) names
// under removed: objects a forget, prune, compaction or key removal took
// away on purpose, which the mirror may still hold within its delete delay.
// Copying them back would undo that run.
func removedKeys(ctx context.Context, r *repo.Repository, from backend.Backend, primary, mirrored map[string]bool) (map[string]bool, error) {
	records := map[string]bool{}
	for _, side := range []map[string]bool{primary, mirrored} {
		for key := range side {
			if k, ok := classify(key); ok && k.phase == phaseDeletions {
				records[key] = true
			}
		}
	}
	removed := map[string]bool{}
	for key := range records {
		var d repo.Deletion
		found := false
		for _, be := range []backend.Backend{r.Backend(), from} {
			if loadRecord(ctx, r, be, key, &d) == nil {
				found = true
				break
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		if !found {
			// Neither copy opens: check lists the record (and repair it as
			// unrepairable); what it names cannot be told from loss.
			continue
		}
		for _, k := range d.Removed {
			removed[k] = true
		}
	}
	return removed, nil
}

// loadRecord loads a deletion record from be, verified and opened with r's
// key.
func loadRecord(ctx context.Context, r *repo.Repository, be backend.Backend, key string, d *repo.Deletion) error {
	stored, err := backend.LoadAll(ctx, be, key)
	if err != nil {
		return err
	}
	k, _ := classify(key)
	if chunk.ObjectID(stored) != k.id {
		return fmt.Errorf("%s: stored bytes do not hash to the name: %w", key, repo.ErrCorrupt)
	}
	plain, err := r.OpenObject(repo.PrefixDeletions, stored)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if err := json.Unmarshal(plain, d); err != nil {
		return fmt.Errorf("decode %s: %w: %w", key, err, repo.ErrCorrupt)
	}
	return nil
}

// repairOne fetches one object from the mirror, checks it against its name
// and (unless dryRun) writes it to dst. It reports whether the object was
// (or would be) repaired, and why not; the error is for operational
// failures.
//
// Nothing is recorded under deletions/ for the damaged object removed
// here: a deletion record tells mirrors and later runs that a key left the
// repository on purpose, and this one does not leave it — its name is
// written back at once with the very bytes the name demands (SPEC section
// 3: the only rewrite "immutable" allows). A record naming it under
// "removed" would be false, and would make the next repair skip the key.
// The bytes are fetched and verified before the damaged copy is removed; if
// the process dies between Remove and Save the key is simply missing, and
// the next repair (or check) finds it and copies it again.
func repairOne(ctx context.Context, dst, from backend.Backend, it repairItem, dryRun bool) (bool, string, error) {
	k, _ := classify(it.key)
	data, err := backend.LoadAll(ctx, from, it.key)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return false, "the mirror does not hold it", nil
	case err != nil:
		return false, "", err
	case chunk.ObjectID(data) != k.id:
		return false, "the mirror's copy is damaged too: its bytes do not hash to its name", nil
	case dryRun:
		return true, "", nil
	}
	if it.damaged {
		if err := dst.Remove(ctx, it.key); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return false, "", fmt.Errorf("remove the damaged copy: %w", err)
		}
	}
	err = dst.Save(ctx, it.key, data)
	if errors.Is(err, backend.ErrExists) {
		// Written meanwhile (a backup adds the same content-addressed
		// object): fine only if those bytes match the name.
		stored, lerr := backend.LoadAll(ctx, dst, it.key)
		if lerr != nil {
			return false, "", lerr
		}
		if chunk.ObjectID(stored) != k.id {
			return false, "", fmt.Errorf("save: %w (and the object there is damaged)", err)
		}
		return true, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("save: %w", err)
	}
	return true, "", nil
}
