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
	// Extend makes a cut by LSN that falls inside a transaction extend to
	// that transaction's end instead (a snapshot's consistent cut, SPEC
	// section 5); the log must complete it.
	Extend bool
	// MemLimit is the memory of each tier's delta sorter (default 64 MiB);
	// beyond it the sorted runs spill to TmpDir.
	MemLimit int64
	TmpDir   string
	// Layers makes Replay return, instead of the merged states (Tiers),
	// the delta layers (Layers) that graph.Apply turns the input states
	// into the same states with: what `snapshot synthesize` stores, built
	// from the log alone. The input tiers are then not read (tiers may be
	// nil; given ones are closed, and their names count as LayerTiers).
	Layers bool
	// LayerTiers lists every tier of the snapshot the layers are for. A
	// node delete detaches relationships in any tier, so each of these
	// tiers gets a layer (of detach lines at least), besides every tier an
	// applied record names.
	LayerTiers []string
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
	// (Close does). Nil with ReplayOptions.Layers.
	Tiers map[string]graph.Iterator
	// Layers (with ReplayOptions.Layers) are the delta layers by tier name:
	// every tier of LayerTiers (and of the input tiers) and every tier an
	// applied record names. Each is a canonical layer stream: first a
	// detach line (graph.NewDetach) for every node an applied record
	// deleted, in every layer, then for each kind and id the tier's applied
	// records touch the last of them in log order, an upsert or a
	// tombstone, except that a relationship upsert whose start or end
	// node was deleted after it is a tombstone instead. For every tier,
	// graph.Apply(input state, [layer]) is the state Replay would return
	// in Tiers. Close them all (Close does).
	Layers map[string]graph.Iterator
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

// Close closes every tier and layer iterator.
func (r *ReplayResult) Close() error {
	var first error
	for _, m := range []map[string]graph.Iterator{r.Tiers, r.Layers} {
		for _, it := range m {
			if err := it.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// TierNames returns the result's tier names, sorted.
func (r *ReplayResult) TierNames() []string { return sortedNames(r.Tiers) }

// LayerNames returns the names of the result's layers, sorted.
func (r *ReplayResult) LayerNames() []string { return sortedNames(r.Layers) }

func sortedNames(m map[string]graph.Iterator) []string {
	names := make([]string, 0, len(m))
	for n := range m {
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
//
// With opts.Layers the same delta becomes the layers instead (see
// ReplayResult.Layers): the detach rule above, which needs the base only
// for relationships carried over from it, is left to graph.Apply through
// the detach lines; within the delta it is applied here, turning a
// relationship's last upsert that a later node delete detaches into a
// tombstone. The cost is the log's, not the graph's: the tiers are not
// read.
func Replay(tiers map[string]graph.Iterator, log Iterator, opts ReplayOptions) (res *ReplayResult, err error) {
	if opts.Layers {
		for _, n := range opts.LayerTiers {
			if !graph.ValidTierName(n) {
				for _, it := range tiers {
					it.Close()
				}
				return nil, fmt.Errorf("replay: layer tier %q is not a tier name", n)
			}
		}
	}
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
			if opts.Extend && !startsNew && len(pending) > 0 && pending[0].LSN <= opts.LSN {
				goto take // the cut's transaction continues: take it whole
			}
			if !startsNew && len(pending) > 0 {
				res.Straddle = &TxInfo{Tx: r.Tx, FirstLSN: pending[0].LSN, Records: len(pending)}
			}
			stopped = true
			break
		}
	take:
		pending = append(pending, r)
		if closes {
			if err := commit(pending); err != nil {
				return nil, err
			}
			pending = nil
		}
	}
	if !stopped {
		// Lsn 0 is the state before the log; a cut at or before AfterLSN
		// needs nothing of it.
		reached := uint64(0)
		if last != nil {
			reached = last.LSN
		}
		if opts.HasLSN && reached < opts.LSN && !(opts.HasAfter && opts.LSN <= opts.AfterLSN) {
			newest := "none"
			if last != nil {
				newest = fmt.Sprint(last.LSN)
			}
			return nil, fmt.Errorf("the log does not reach lsn %d (newest lsn: %s)", opts.LSN, newest)
		}
		if opts.Extend && opts.HasLSN && len(pending) > 0 && pending[0].LSN <= opts.LSN {
			return nil, fmt.Errorf("the cut at lsn %d lies in transaction %s, which the log does not complete yet (it ends at lsn %d)",
				opts.LSN, pending[0].Tx, pending[len(pending)-1].LSN)
		}
		if len(pending) > 0 {
			res.Open = &TxInfo{Tx: pending[0].Tx, FirstLSN: pending[0].LSN, LastLSN: pending[len(pending)-1].LSN, Records: len(pending)}
		}
	}
	if v, ok := log.(interface{ Validator() *Validator }); ok {
		res.Clamped = v.Validator().Clamped
	}
	if opts.Layers {
		in := tiers
		tiers = nil // b.layers closes them
		return b.layers(res, in, opts.LayerTiers)
	}

	res.Tiers = map[string]graph.Iterator{}
	names := map[string]bool{}
	for n := range tiers {
		names[n] = true
	}
	for n := range b.sorters {
		names[n] = true
	}
	deleted := newDeletedNodes(b.deleted)
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
		res.Tiers[n] = &mergeIter{base: base, delta: deltaKeys{it: delta}, deleted: deleted, tier: n}
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

// layers turns the batch into one layer per tier (see ReplayResult.Layers).
// It closes the input tiers, which a layer does not need.
func (b *batch) layers(res *ReplayResult, tiers map[string]graph.Iterator, layerTiers []string) (*ReplayResult, error) {
	names := map[string]bool{}
	for _, n := range layerTiers {
		names[n] = true
	}
	var cerr error
	for n, it := range tiers {
		names[n] = true
		if err := it.Close(); err != nil && cerr == nil {
			cerr = fmt.Errorf("tier %s: %w", n, err)
		}
	}
	for n := range b.sorters {
		names[n] = true
	}
	// The detach lines, the same in every layer: the nodes the batch
	// deleted, in id order (Go's string order is the bytes' order, the
	// canonical one).
	detach := make([]string, 0, len(b.deleted))
	for id := range b.deleted {
		detach = append(detach, id)
	}
	sort.Strings(detach)
	res.Layers = map[string]graph.Iterator{}
	deleted := newDeletedNodes(b.deleted)
	for n := range names {
		var delta graph.Iterator
		if s := b.sorters[n]; s != nil {
			var err error
			delta, err = s.Sort()
			if err != nil {
				for _, it := range res.Layers {
					it.Close()
				}
				res.Layers = nil
				return nil, err
			}
			delete(b.sorters, n)
		}
		res.Layers[n] = &layerIter{detach: detach, delta: deltaKeys{it: delta}, deleted: deleted}
	}
	if cerr != nil {
		res.Close()
		return nil, cerr
	}
	return res, nil
}

// deltaKeys reads a tier's sorted delta (the records of one key adjacent,
// in log order; Line is the sequence number) one key at a time.
type deltaKeys struct {
	it   graph.Iterator // nil: empty
	next *graph.Record  // lookahead
}

// last returns the last delta record of the next key, nil at the end.
func (d *deltaKeys) last() (*graph.Record, error) {
	if d.it == nil {
		return nil, nil
	}
	read := func() (*graph.Record, error) {
		rec, err := d.it.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return rec, err
	}
	cur := d.next
	d.next = nil
	if cur == nil {
		var err error
		if cur, err = read(); err != nil || cur == nil {
			return nil, err
		}
	}
	for {
		nx, err := read()
		if err != nil {
			return nil, err
		}
		if nx == nil || graph.Compare(nx, cur) != 0 {
			d.next = nx
			return cur, nil
		}
		cur = nx
	}
}

func (d *deltaKeys) close() error {
	if d.it == nil {
		return nil
	}
	return d.it.Close()
}

// layerIter streams one tier's layer: the detach lines, then the delta.
type layerIter struct {
	detach  []string // shared by the layers, read only
	delta   deltaKeys
	deleted *deletedNodes
	err     error
}

func (l *layerIter) Next() (*graph.Record, error) {
	if l.err != nil {
		return nil, l.err
	}
	if len(l.detach) > 0 {
		id := l.detach[0]
		l.detach = l.detach[1:]
		return graph.NewDetach(id), nil
	}
	rec, err := l.delta.last()
	if err == nil && rec == nil {
		err = io.EOF
	}
	if err != nil {
		l.err = err
		return nil, err
	}
	seq := rec.Line
	if !rec.Tombstone && rec.Kind == graph.KindRelationship && (l.deleted.after(rec.StartID, seq) || l.deleted.after(rec.EndID, seq)) {
		// Deleted with its node, later in the batch; without this
		// tombstone, Apply would keep it (the detach line only drops
		// relationships of older inputs).
		return graph.NewTombstone(graph.KindRelationship, rec.ID), nil
	}
	rec.Line = 0
	return rec, nil
}

func (l *layerIter) Close() error { return l.delta.close() }

// mergeIter merges a tier's base state with its delta (sorted, the records
// of one key adjacent in log order: the last one wins) and drops detached
// relationships. The delta records' Line is their sequence number.
type mergeIter struct {
	base    graph.Iterator
	delta   deltaKeys
	deleted *deletedNodes
	tier    string

	started bool
	b, d    *graph.Record // current heads (nil at the end)
	// bTaken: b was returned by the last call. The base is read on only
	// at the next one, for its record may be valid only until then
	// (graph.NewBorrowedLineIterator); lastBase is the key it had.
	bTaken   bool
	lastBase graph.Key
	hasLast  bool
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
	if rec.Kind == graph.KindDetach {
		return fmt.Errorf("tier %s: detach line for node %s in a state (detach lines belong only in delta layers)", m.tier, rec.ID)
	}
	if rec.Tombstone {
		return fmt.Errorf("tier %s: tombstone for %s %s in a state", m.tier, rec.Kind, rec.ID)
	}
	if m.hasLast && m.lastBase.Compare(rec) >= 0 {
		return fmt.Errorf("tier %s: %s %s is out of canonical order or appears twice", m.tier, rec.Kind, rec.ID)
	}
	m.lastBase, m.hasLast = graph.KeyOf(rec), true
	m.b = rec
	return nil
}

// nextDelta sets m.d to the last delta record of the next key.
func (m *mergeIter) nextDelta() error {
	var err error
	m.d, err = m.delta.last()
	return err
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
	for {
		if m.bTaken {
			m.bTaken = false
			if err := m.nextBase(); err != nil {
				return nil, err
			}
		}
		if m.b == nil && m.d == nil {
			break
		}
		var rec *graph.Record
		seq := 0 // 0: from the base
		switch {
		case m.d == nil || m.b != nil && graph.Compare(m.b, m.d) < 0:
			rec, m.bTaken = m.b, true
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
		if rec.Kind == graph.KindRelationship && (m.deleted.after(rec.StartID, seq) || m.deleted.after(rec.EndID, seq)) {
			continue
		}
		if seq != 0 {
			rec.Line = 0
		}
		return rec, nil
	}
	return nil, io.EOF
}

func (m *mergeIter) Close() error {
	err := m.base.Close()
	if derr := m.delta.close(); err == nil {
		err = derr
	}
	return err
}
