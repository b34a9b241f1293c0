package repo

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

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
	t    time.Time
	key  string
	kind string
}

// Marked reports whether backend key (a pack, "data/ab/ab…") is marked.
func (m *MarkSet) Marked(key string) bool {
	_, ok := m.marked[key]
	return ok
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
	err := r.List(ctx, PrefixDeletions, func(id chunk.ID, _ int64) error {
		if _, ok := m.seen[id]; !ok {
			fresh = append(fresh, id)
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
				m.events = append(m.events, markEvent{t: d.Time, key: k, kind: kind})
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
