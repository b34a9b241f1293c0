package repo

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
)

// Deletion kinds.
const (
	DeletionPruneMark       = "prune-mark"       // phase one: packs marked unreferenced
	DeletionPruneDelete     = "prune-delete"     // phase two: objects removed
	DeletionPruneUnmark     = "prune-unmark"     // marked packs referenced again
	DeletionOplogCompaction = "oplog-compaction" // segments replaced by a compacted one
	DeletionKeyRemoval      = "key-removal"
	DeletionForget          = "forget" // snapshots removed by retention
)

// Deletion is the plaintext of deletions/<id>: one record per deleting run.
// Mirrors replay these records; nothing is deleted on a mirror that no
// record names.
type Deletion struct {
	Kind     string    `json:"kind"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname,omitempty"`
	Reason   string    `json:"reason"`
	// Marked, Unmarked and Removed hold backend keys ("data/ab/ab…").
	Marked   []string `json:"marked,omitempty"`
	Unmarked []string `json:"unmarked,omitempty"`
	Removed  []string `json:"removed,omitempty"`
}

// SaveDeletion stores a deletion record and returns its id.
func (r *Repository) SaveDeletion(ctx context.Context, d Deletion) (chunk.ID, error) {
	if d.Time.IsZero() {
		d.Time = time.Now().UTC()
	}
	if d.Hostname == "" {
		d.Hostname, _ = os.Hostname()
	}
	id, _, err := r.SaveJSON(ctx, PrefixDeletions, d)
	return id, err
}

// MarkSet is the set of packs currently marked for deletion, with the
// deletion records it was computed from (so a later call can add only the
// records that appeared since).
type MarkSet struct {
	seen   map[chunk.ID]struct{}
	events []markEvent
	marked map[string]struct{}
}

type markEvent struct {
	t      time.Time // the record's time (its writer's clock): replay order
	stored time.Time // the record object's time by the store's clock
	key    string
	kind   string
}

// Marked reports whether backend key (a pack, "data/ab/ab…") is marked.
func (m *MarkSet) Marked(key string) bool {
	_, ok := m.marked[key]
	return ok
}

// MarkedAt returns when key was (last) marked, by the store's clock (the
// marking record's modification time, so clock skew between hosts cannot
// shorten a safety margin); zero if it is not marked.
func (m *MarkSet) MarkedAt(key string) time.Time {
	if _, ok := m.marked[key]; !ok {
		return time.Time{}
	}
	var t time.Time
	for _, e := range m.events {
		if e.key == key && e.kind == DeletionPruneMark && e.stored.After(t) {
			t = e.stored
		}
	}
	return t
}

// Keys returns the marked keys, sorted.
func (m *MarkSet) Keys() []string {
	keys := make([]string, 0, len(m.marked))
	for k := range m.marked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Len returns the number of marked objects.
func (m *MarkSet) Len() int { return len(m.marked) }

// LoadMarks reads every deletion record and returns the marked packs.
func (r *Repository) LoadMarks(ctx context.Context) (*MarkSet, error) {
	m := &MarkSet{seen: map[chunk.ID]struct{}{}}
	_, err := r.RefreshMarks(ctx, m)
	return m, err
}

// RefreshMarks adds the deletion records that appeared since m was computed
// and returns the keys that became marked.
func (r *Repository) RefreshMarks(ctx context.Context, m *MarkSet) ([]string, error) {
	var fresh []chunk.ID
	stored := map[chunk.ID]time.Time{}
	err := r.be.List(ctx, PrefixDeletions+"/", func(oi backend.ObjectInfo) error {
		id, err := chunk.ParseID(oi.Key[strings.LastIndexByte(oi.Key, '/')+1:])
		if err != nil {
			return nil
		}
		if _, ok := m.seen[id]; !ok {
			fresh = append(fresh, id)
			stored[id] = oi.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list deletion records: %w", err)
	}
	for _, id := range fresh {
		var d Deletion
		if err := r.LoadJSON(ctx, PrefixDeletions, id, &d); err != nil {
			return nil, err
		}
		m.seen[id] = struct{}{}
		add := func(keys []string, kind string) {
			for _, k := range keys {
				m.events = append(m.events, markEvent{t: d.Time, stored: stored[id], key: k, kind: kind})
			}
		}
		add(d.Marked, DeletionPruneMark)
		add(d.Unmarked, DeletionPruneUnmark)
		add(d.Removed, DeletionPruneDelete)
	}
	// Replay in time order: a pack marked, unmarked and marked again ends
	// marked; a removed pack is no longer a concern.
	sort.SliceStable(m.events, func(i, j int) bool { return m.events[i].t.Before(m.events[j].t) })
	before := m.marked
	m.marked = make(map[string]struct{})
	for _, e := range m.events {
		switch e.kind {
		case DeletionPruneMark:
			m.marked[e.key] = struct{}{}
		default:
			delete(m.marked, e.key)
		}
	}
	var newly []string
	for k := range m.marked {
		if _, ok := before[k]; !ok {
			newly = append(newly, k)
		}
	}
	sort.Strings(newly)
	return newly, nil
}
