package graph

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Capture sorts the tiers of one graph and checks their integrity while the
// sorted records are read back, in one pass, for a backup that stores them.
//
// A Checker followed by a Sorter per tier does the work twice: the checker
// sorts every node and relationship id on its own (and then joins them, on
// one core, before anything can be stored), although the record sorts put
// the same ids in the same order anyway. Capture sorts only the records;
// Run merges the tiers' sorted records by id, which finds ids defined twice
// (in one tier or across tiers), puts the nodes, which come first, in a
// table, looks up the endpoints of each relationship after them, which
// finds dangling relationships (a graph whose nodes do not fit the table
// has its endpoints sorted and joined with the nodes instead), and hands
// each record on to its tier's Iterator as it goes. The check thus
// runs alongside the store, and its report is ready when the last record
// has been handed out. The report is the Checker's, word for word.
//
// Use: Tier(i).Add every record (one goroutine per tier may add at once),
// then call Run in one goroutine while others drain Iterator(i) for every
// tier. Records an Iterator returns carry Kind, ID, Line and Canonical only,
// and an id defined twice reaches its Iterator once (the first definition:
// the check reports the second), so each stream is in strict canonical order.
type Capture struct {
	// MaxProblems and MaxWarnings cap the report's lists as the Checker's.
	MaxProblems, MaxWarnings int

	tiers    []*TierSorter
	outs     []*captureIter
	memLimit int64
	table    bool  // Run checks with a node table (for tests)
	err      error // set before the outputs close
	ran      bool
}

// TierSorter collects one tier's records for a Capture. It is not safe for
// concurrent use; different tiers' TierSorters are.
type TierSorter struct {
	name   string
	recs   *extSort // record items (see Add)
	refs   *extSort // endpoint items, filled by Run if the node table does not fit
	stats  *Stats
	seed   maphash.Seed // the Capture's, for labelHash
	counts tierCounts
	buf    []byte
	// lists holds the tier's node label lists by labelHash, for the words
	// of a warning in table mode; listsFull: there were more than
	// maxLabelLists, and Run joins the sorted endpoints instead.
	lists     map[uint64][]string
	listsFull bool
	lp        LineParser // completes partial records
}

// Share of a tier's memory for its endpoint sort: a relationship record of
// ~200 bytes has two endpoint items of ~20, each with 48 bytes of overhead.
const refShare = 3

// NewCapture returns a Capture of the named tiers that holds up to memLimit
// bytes of items in memory, spilling sorted runs to tmpDir.
func NewCapture(names []string, memLimit int64, tmpDir string) *Capture {
	c := &Capture{MaxProblems: 1000, MaxWarnings: 100, memLimit: memLimit}
	share := memLimit / int64(max(len(names), 1))
	seed := maphash.MakeSeed()
	for _, name := range names {
		c.tiers = append(c.tiers, &TierSorter{
			name:  name,
			recs:  newExtSort(share-share/refShare, tmpDir, compareEncoded, prefixEncoded),
			refs:  newExtSort(share/refShare, tmpDir, compareRefItems, prefixEntry),
			stats: newStats(),
			seed:  seed,
		})
		c.outs = append(c.outs, &captureIter{c: c, ch: make(chan recBatch, 4), free: make(chan recBatch, 2), gone: make(chan struct{})})
	}
	return c
}

// Tier returns the sorter of the i-th tier named to NewCapture.
func (c *Capture) Tier(i int) *TierSorter { return c.tiers[i] }

// Iterator returns the i-th tier's records in canonical order; they arrive
// while Run runs. Close it to stop taking them (Run then drops the rest).
// A record stays valid until the second call of Next after the one that
// returned it (a caller may compare it with the next), then its memory is
// used again.
func (c *Capture) Iterator(i int) Iterator { return c.outs[i] }

// Close removes the temporary files of a Capture whose Run is never called.
func (c *Capture) Close() error {
	if !c.ran {
		c.ran = true
		for _, t := range c.tiers {
			t.recs.discard()
			t.refs.discard()
		}
	}
	return nil
}

// Items of a Capture's record sort:
//
//	kind byte | str id | uvarint line | node: 8-byte label hash |
//	relationship: str start id | 8-byte hash | str end id | 8-byte hash |
//	canonical line
//
// (kind and id first, as the Sorter's items, so that they compare alike;
// a relationship's hashes are of its endpoints' labels), and of the
// endpoint sort, which Run makes from the relationship items only when the
// node table does not fit (see Capture.open):
//
//	str node id | uvarint line | end byte | 8-byte label hash
//
// with str as in the Sorter's encoding. An endpoint names its relationship
// only by tier and line: the words of a problem (the relationship's id and
// type, its labels) come from the relationship's record when the merge
// passes it, which is after every node, so the items stay small.

// Add adds a record read from line. A partial record (read from a stored
// stream by key) is completed first, as the Checker does.
func (t *TierSorter) Add(rec *Record, line int) error {
	if rec.Tombstone {
		return fmt.Errorf("check record: %s %s is a tombstone", rec.Kind, rec.ID)
	}
	rec, err := t.lp.Full(rec)
	if err != nil {
		return fmt.Errorf("check record: tier %s: %w", t.name, err)
	}
	b := append(t.buf[:0], byte(rec.Kind))
	b = appendStr(b, rec.ID)
	b = binary.AppendUvarint(b, uint64(line))
	if rec.Kind == KindNode {
		t.stats.Nodes++
		b = binary.LittleEndian.AppendUint64(b, t.labels(rec.Labels, true))
	} else {
		t.stats.Relationships++
		t.countType(rec.Type)
		b = appendStr(b, rec.StartID)
		b = binary.LittleEndian.AppendUint64(b, t.labels(rec.StartLabels, false))
		b = appendStr(b, rec.EndID)
		b = binary.LittleEndian.AppendUint64(b, t.labels(rec.EndLabels, false))
	}
	t.buf = b
	if err := t.recs.add2(t.buf, rec.Canonical); err != nil {
		return fmt.Errorf("sort records: %w", err)
	}
	return nil
}

// maxLabelLists bounds a tier's distinct node label lists kept for the node
// table's warnings; a graph with more is checked by the endpoint sort.
const maxLabelLists = 1 << 12

// rememberList keeps a node label list for the words of a warning.
func (t *TierSorter) rememberList(hash uint64, list []string) {
	if _, ok := t.lists[hash]; ok || t.listsFull {
		return
	}
	if len(t.lists) >= maxLabelLists {
		t.listsFull = true
		return
	}
	if t.lists == nil {
		t.lists = map[uint64][]string{}
	}
	t.lists[hash] = slices.Clone(list)
}

// addRefs adds the endpoint items of the relationship c to the endpoint
// sort.
func (t *TierSorter) addRefs(c *recCursor) error {
	for end, id := range [2][]byte{c.start, c.end} {
		hash := c.startHash
		if end == 1 {
			hash = c.endHash
		}
		b := binary.AppendUvarint(appendStr(t.buf[:0], id), uint64(c.line))
		b = append(b, byte(end))
		t.buf = binary.LittleEndian.AppendUint64(b, hash)
		if err := t.refs.add(t.buf); err != nil {
			return fmt.Errorf("check record: %w", err)
		}
	}
	return nil
}

// labelHash hashes a set of labels as graphref compares them, a sorted list:
// the sum of the labels' hashes does not depend on their order and counts a
// repeated label twice, without sorting anything. Two different lists hash
// alike with a chance of about 2^-64, which would cost one warning (label
// mismatches only warn).
func labelHash(seed maphash.Seed, labels []string) uint64 {
	var h uint64
	for _, l := range labels {
		h += maphash.String(seed, l)
	}
	return h
}

// captureIter is one tier's output: batches of records from Run.
type captureIter struct {
	c    *Capture
	ch   chan recBatch
	free chan recBatch // batches the consumer is done with, for Run to refill
	gone chan struct{} // closed by Close: Run drops this tier's records
	once sync.Once
	prev recBatch // the batch before cur: its records may still be held
	cur  recBatch
	i    int
}

// recBatch is a batch of records and the buffer of their canonical lines.
type recBatch struct {
	recs  []Record
	canon []byte
}

func (it *captureIter) Next() (*Record, error) {
	for it.i >= len(it.cur.recs) {
		b, ok := <-it.ch
		if !ok {
			if it.c.err != nil {
				return nil, it.c.err
			}
			return nil, io.EOF
		}
		// The records of the batch before the current one were returned
		// two calls ago or earlier: their memory can be used again.
		if it.prev.recs != nil {
			select {
			case it.free <- it.prev:
			default:
			}
		}
		it.prev, it.cur, it.i = it.cur, b, 0
	}
	it.i++
	return &it.cur.recs[it.i-1], nil
}

func (it *captureIter) Close() error {
	it.once.Do(func() { close(it.gone) })
	return nil
}

// Run sorts what the tiers hold, merges them, checks the graph and hands
// the records to the Iterators; it returns the check's report once every
// record is out. An error (or ctx's end) reaches the Iterators too.
func (c *Capture) Run(ctx context.Context) (rep *Report, err error) {
	if c.ran {
		return nil, errors.New("check graph: capture already ran")
	}
	c.ran = true
	defer func() {
		c.err = err
		for _, o := range c.outs {
			close(o.ch)
		}
	}()
	m, err := c.open()
	if err != nil {
		return nil, fmt.Errorf("check graph: %w", err)
	}
	defer m.close()
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	return m.finish(), nil
}

// open sorts every tier's records, the tiers in parallel, and readies the
// dangling check: a table of the nodes, if it fits in the endpoint sort's
// share of the memory, or else the endpoint sort.
//
// The table (16 bytes a node) is filled as the nodes come out of the merge,
// which is before any relationship, and each relationship record looks its
// endpoints up as it passes: no endpoint is sorted, spilled or read back.
// A graph with more nodes than fit, or more distinct label lists than
// maxLabelLists, is checked as before: its endpoint items, made now from
// the relationship items, are sorted and joined with the nodes. The report
// is the same either way, word for word and in order.
func (c *Capture) open() (*captureMerge, error) {
	m := &captureMerge{c: c, recs: make([]*mergeIter, len(c.tiers)), refs: make([]*mergeIter, len(c.tiers))}
	var nodes int64
	lists := map[uint64][]string{}
	fits := true
	for _, t := range c.tiers {
		t.flushCounts()
		nodes += t.stats.Nodes
		fits = fits && !t.listsFull
		for h, l := range t.lists {
			lists[h] = l
		}
	}
	if n := tableSlots(nodes, c.memLimit/refShare); fits && n > 0 {
		m.table = newNodeTable(n, lists)
		c.table = true
	}
	var g errgroup.Group
	for i, t := range c.tiers {
		g.Go(func() (err error) {
			if m.table == nil {
				var d recordDecoder
				var cur recCursor
				err = t.recs.each(func(item []byte) error {
					if err := decodeRecItem(&d, item, &cur); err != nil || cur.kind != KindRelationship {
						return err
					}
					return t.addRefs(&cur)
				})
				if err != nil {
					t.recs.discard()
					t.refs.discard()
					return err
				}
			}
			if m.recs[i], err = t.recs.sorted(); err != nil {
				t.refs.discard()
				return err
			}
			if m.table != nil {
				t.refs.discard()
				return nil
			}
			m.refs[i], err = t.refs.sorted()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}
