package oplog

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/strata-backup/strata/graph"
)

// ReplayOptions say which part of the log to replay.
type ReplayOptions struct {
	// AfterLSN (when HasAfter) is K: the tiers are a state cut at K, records
	// with lsn <= K are skipped, and the log must not miss a record after K
	// (its first lsn <= K+1, or its first prev_lsn <= K).
	AfterLSN uint64
	HasAfter bool
	// LSN (when HasLSN) cuts at the complete transactions whose last lsn is
	// <= LSN; the log must reach it. At (when non-nil) cuts at those whose
	// last effective ts is <= *At. With neither, every complete transaction
	// is applied. A transaction is never split.
	LSN    uint64
	HasLSN bool
	At     *Time
	// MemLimit is the memory of each tier's delta sorter (default 64 MiB);
	// beyond it the sorted runs spill to TmpDir.
	MemLimit int64
	TmpDir   string
}

// TxInfo describes a transaction (the open trailing one, the one the cut
// falls inside).
type TxInfo struct {
	Tx                Tx
	FirstLSN, LastLSN uint64
	Records           int
}

// ReplayResult is the state after the replay plus what happened.
type ReplayResult struct {
	// Tiers are the resulting tier states in canonical order, by tier name:
	// every input tier and every tier an applied record names. Each
	// Iterator streams; closing it closes its input tier. Close them all
	// (Close does).
	Tiers map[string]graph.Iterator
	// Transactions is the number of whole transactions inside the cut;
	// Applied and Skipped count their records (Skipped: lsn <= AfterLSN).
	Transactions, Applied, Skipped int
	// LastLSN and LastTS are the last record inside the cut (0, "" if none).
	LastLSN uint64
	LastTS  string
	// Open is the open trailing transaction left out (nil if none); Straddle
	// the transaction the cut falls inside (nil if none).
	Open, Straddle *TxInfo
	// Clamped counts the records read whose ts was clamped.
	Clamped int
}

// Close closes every tier iterator.
func (r *ReplayResult) Close() error {
	var first error
	for _, it := range r.Tiers {
		if err := it.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// TierNames returns the result's tier names, sorted.
func (r *ReplayResult) TierNames() []string {
	names := make([]string, 0, len(r.Tiers))
	for n := range r.Tiers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Replay applies the log to tiers (each a canonically sorted state, as
// snapshot restores it) with graphref's semantics and returns the new
// states. The log is read first (up to the cut), the tier streams are
// merged as the result is read.
//
// How: the applied records become one delta layer per tier (upserts and
// tombstones, last write in log order wins), sorted with bounded memory by a
// graph.Sorter, and merged with the base. Detach: every node delete records
// the node id with the sequence number of the delete (the latest one wins);
// a relationship in the result is dropped if its start or end node was
// deleted after the relationship's last upsert in the batch (for one
// carried over from the base: deleted at all). This is exactly what
// applying the records one at a time gives, since a relationship's last
// upsert fixes its endpoints until the end of the batch.
//
// Memory: the delta sorters hold up to MemLimit each and spill beyond it;
// what stays in memory is one transaction's records (a transaction is
// applied only once it is known complete and inside the cut) and the ids of
// the nodes the batch deletes.
func Replay(tiers map[string]graph.Iterator, log Iterator, opts ReplayOptions) (res *ReplayResult, err error) {
	mem := opts.MemLimit
	if mem <= 0 {
		mem = 64 << 20
	}
	b := &batch{
		sorters: map[string]*graph.Sorter{},
		deleted: map[string]int{},
		mem:     mem, tmp: opts.TmpDir,
	}
	defer func() {
		if err != nil {
			for _, s := range b.sorters {
				s.Close()
			}
			for _, it := range tiers {
				it.Close()
			}
		}
	}()
	res = &ReplayResult{}
	var (
		tr      TxTracker
		pending []*Record
		last    *Record
		first   = true
	)
	commit := func(tx []*Record) error {
		res.Transactions++
		for _, r := range tx {
			if opts.HasAfter && r.LSN <= opts.AfterLSN {
				res.Skipped++
				continue
			}
			res.Applied++
			if err := b.add(r); err != nil {
				return err
			}
		}
		l := tx[len(tx)-1]
		res.LastLSN, res.LastTS = l.LSN, l.EffTS
		return nil
	}
	stopped := false
	for {
		r, err := log.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if first {
			first = false
			if opts.HasAfter {
				if r.HasPrev && opts.AfterLSN < r.PrevLSN {
					return nil, fmt.Errorf("the log starts at lsn %d with prev_lsn %d: the records after lsn %d up to lsn %d are missing",
						r.LSN, r.PrevLSN, opts.AfterLSN, r.PrevLSN)
				}
				if !r.HasPrev && opts.AfterLSN+1 < r.LSN {
					return nil, fmt.Errorf("the log starts at lsn %d: records %d..%d are missing",
						r.LSN, opts.AfterLSN+1, r.LSN-1)
				}
			}
		}
		last = r
		startsNew, closes := tr.Add(r)
		if startsNew && len(pending) > 0 {
			if err := commit(pending); err != nil {
				return nil, err
			}
			pending = nil
		}
		if opts.HasLSN && r.LSN > opts.LSN || opts.At != nil && r.Eff.Compare(*opts.At) > 0 {
			if !startsNew && len(pending) > 0 {
				res.Straddle = &TxInfo{Tx: r.Tx, FirstLSN: pending[0].LSN, Records: len(pending)}
			}
			stopped = true
			break
		}
		pending = append(pending, r)
		if closes {
			if err := commit(pending); err != nil {
				return nil, err
			}
			pending = nil
		}
	}
	if !stopped {
		if opts.HasLSN && (last == nil || last.LSN < opts.LSN) {
			newest := "none"
			if last != nil {
				newest = fmt.Sprint(last.LSN)
			}
			return nil, fmt.Errorf("the log does not reach lsn %d (newest lsn: %s)", opts.LSN, newest)
		}
		if len(pending) > 0 {
			res.Open = &TxInfo{Tx: pending[0].Tx, FirstLSN: pending[0].LSN, LastLSN: pending[len(pending)-1].LSN, Records: len(pending)}
		}
	}
	if v, ok := log.(interface{ Validator() *Validator }); ok {
		res.Clamped = v.Validator().Clamped
	}

	res.Tiers = map[string]graph.Iterator{}
	names := map[string]bool{}
	for n := range tiers {
		names[n] = true
	}
	for n := range b.sorters {
		names[n] = true
	}
	for n := range names {
		base := tiers[n]
		if base == nil {
			base = graph.NewSliceIterator(nil)
		}
		var delta graph.Iterator
		if s := b.sorters[n]; s != nil {
			delta, err = s.Sort()
			if err != nil {
				for _, it := range res.Tiers {
					it.Close()
				}
				return nil, err
			}
			delete(b.sorters, n)
		}
		res.Tiers[n] = &mergeIter{base: base, delta: delta, deleted: b.deleted, tier: n}
	}
	return res, nil
}

// batch is the delta being built from the applied records.
type batch struct {
	sorters map[string]*graph.Sorter
	deleted map[string]int // node id -> sequence number of its last delete
	seq     int
	mem     int64
	tmp     string
}

func (b *batch) add(r *Record) error {
	b.seq++
	s := b.sorters[r.Tier]
	if s == nil {
		s = graph.NewSorter(b.mem, b.tmp)
		b.sorters[r.Tier] = s
	}
	if r.Op == OpUpsert {
		return s.Add(r.Rec, b.seq)
	}
	if r.Kind == graph.KindNode {
		b.deleted[r.ID] = b.seq
	}
	return s.Add(graph.NewTombstone(r.Kind, r.ID), b.seq)
}

// mergeIter merges a tier's base state with its delta (sorted, the records
// of one key adjacent in log order: the last one wins) and drops detached
// relationships. The delta records' Line is their sequence number.
type mergeIter struct {
	base, delta graph.Iterator
	deleted     map[string]int
	tier        string

	started  bool
	b, d     *graph.Record // current heads (nil at the end)
	dNext    *graph.Record // the delta's lookahead
	lastBase *graph.Record
	err      error
}

func (m *mergeIter) nextBase() error {
	rec, err := m.base.Next()
	if errors.Is(err, io.EOF) {
		m.b = nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("tier %s: %w", m.tier, err)
	}
	if rec.Tombstone {
		return fmt.Errorf("tier %s: tombstone for %s %s in a state", m.tier, rec.Kind, rec.ID)
	}
	if m.lastBase != nil && graph.Compare(m.lastBase, rec) >= 0 {
		return fmt.Errorf("tier %s: %s %s is out of canonical order or appears twice", m.tier, rec.Kind, rec.ID)
	}
	m.lastBase = rec
	m.b = rec
	return nil
}

// nextDelta sets m.d to the last delta record of the next key.
func (m *mergeIter) nextDelta() error {
	if m.delta == nil {
		m.d = nil
		return nil
	}
	read := func() (*graph.Record, error) {
		rec, err := m.delta.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return rec, err
	}
	var cur *graph.Record
	if m.dNext != nil {
		cur = m.dNext
		m.dNext = nil
	} else {
		var err error
		if cur, err = read(); err != nil {
			return err
		}
	}
	if cur == nil {
		m.d = nil
		return nil
	}
	for {
		nx, err := read()
		if err != nil {
			return err
		}
		if nx == nil || graph.Compare(nx, cur) != 0 {
			if nx != nil {
				m.dNext = nx
			}
			break
		}
		cur = nx
	}
	m.d = cur
	return nil
}

func (m *mergeIter) Next() (*graph.Record, error) {
	if m.err != nil {
		return nil, m.err
	}
	rec, err := m.next()
	if err != nil {
		m.err = err
	}
	return rec, err
}

func (m *mergeIter) next() (*graph.Record, error) {
	if !m.started {
		m.started = true
		if err := m.nextBase(); err != nil {
			return nil, err
		}
		if err := m.nextDelta(); err != nil {
			return nil, err
		}
	}
	for m.b != nil || m.d != nil {
		var rec *graph.Record
		seq := 0 // 0: from the base
		switch {
		case m.d == nil || m.b != nil && graph.Compare(m.b, m.d) < 0:
			rec = m.b
			if err := m.nextBase(); err != nil {
				return nil, err
			}
		default:
			rec, seq = m.d, m.d.Line
			if m.b != nil && graph.Compare(m.b, m.d) == 0 {
				if err := m.nextBase(); err != nil {
					return nil, err
				}
			}
			if err := m.nextDelta(); err != nil {
				return nil, err
			}
		}
		if rec.Tombstone {
			continue
		}
		if rec.Kind == graph.KindRelationship && (m.detached(rec.StartID, seq) || m.detached(rec.EndID, seq)) {
			continue
		}
		if seq != 0 {
			rec.Line = 0
		}
		return rec, nil
	}
	return nil, io.EOF
}

// detached: the node was deleted after sequence number seq.
func (m *mergeIter) detached(node string, seq int) bool {
	d, ok := m.deleted[node]
	return ok && d > seq
}

func (m *mergeIter) Close() error {
	err := m.base.Close()
	if m.delta != nil {
		if derr := m.delta.Close(); err == nil {
			err = derr
		}
	}
	return err
}
