package mirror

import (
	"math"
	"sort"
	"time"
)

// Status is how far a mirror is behind its primary (SPEC section 9, `mirror
// status --json`).
type Status struct {
	// MissingObjects and MissingBytes are what a mirror run would copy.
	MissingObjects int   `json:"missing_objects"`
	MissingBytes   int64 `json:"missing_bytes"`
	// LagSeconds is the age of the oldest primary object missing on the
	// mirror, by the primary store's timestamps (0 when nothing is missing
	// or the store gives no times).
	LagSeconds float64 `json:"lag_seconds"`
	// OldestMissing is that object's time (omitted when none).
	OldestMissing *time.Time `json:"oldest_missing,omitempty"`
	// ExtraObjects are mirror objects the primary does not hold and no
	// deletion record names: the mirror keeps them (a wiped primary's data,
	// or verify records written to the mirror itself).
	ExtraObjects int `json:"extra_objects"`
	// PendingDeletions are removals named by the primary's deletion
	// records that the mirror still holds; DueDeletions of them are past
	// the delete delay and the next run applies them.
	PendingDeletions int `json:"pending_deletions"`
	DueDeletions     int `json:"due_deletions"`
	// NextDeletion is when the next delayed removal becomes due (omitted
	// when none is delayed).
	NextDeletion *time.Time `json:"next_deletion,omitempty"`
	// Initialized is false when the mirror holds no repository yet.
	Initialized bool `json:"initialized"`
	// MirrorObjects counts the mirror's objects (leases excluded).
	MirrorObjects int `json:"mirror_objects"`
	// IgnoredObjects are keys of the primary outside the repository layout.
	IgnoredObjects int `json:"ignored_objects"`
}

// Status says how far behind the mirror is, from the plan's listings.
func (p *Plan) Status() Status {
	st := Status{
		ExtraObjects:     p.extra,
		PendingDeletions: len(p.removals),
		Initialized:      !p.initialize,
		MirrorObjects:    p.mirrorObjects,
		IgnoredObjects:   len(p.ignored),
	}
	st.MissingObjects, st.MissingBytes = p.Missing()
	var oldest time.Time
	for _, ph := range p.phases {
		for _, fi := range ph.objs {
			if !fi.ModTime.IsZero() && (oldest.IsZero() || fi.ModTime.Before(oldest)) {
				oldest = fi.ModTime
			}
		}
	}
	if !oldest.IsZero() {
		o := oldest.UTC()
		st.OldestMissing = &o
		st.LagSeconds = math.Max(0, math.Round(p.now.Sub(oldest).Seconds()*1000)/1000)
	}
	for _, r := range p.removals {
		if !r.due.After(p.now) {
			st.DueDeletions++
		} else if st.NextDeletion == nil || r.due.Before(*st.NextDeletion) {
			d := r.due.UTC()
			st.NextDeletion = &d
		}
	}
	return st
}

// sortRemovals orders removals in reverse copy order (snapshots before the
// index objects and packs they need), then by key: a run stopped halfway
// never leaves a snapshot on the mirror whose data it removed.
func sortRemovals(rs []removal) {
	rank := map[string]int{}
	for i, ph := range phaseOrder {
		rank[ph.name] = i
	}
	sort.Slice(rs, func(i, j int) bool {
		ki, _ := classify(rs[i].key)
		kj, _ := classify(rs[j].key)
		if ri, rj := rank[ki.phase], rank[kj.phase]; ri != rj {
			return ri > rj
		}
		return rs[i].key < rs[j].key
	})
}
