package graph

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// captureMerge is one Run of a Capture: the tiers' sorted records and
// endpoints, merged across tiers, with the check's state.
type captureMerge struct {
	c          *Capture
	recs, refs []*mergeIter
	rec        []recCursor
	ref        []refCursor
	out        []outBatch
	rep        Report
	// the first definition of the id merged last
	have               bool
	lastKind           Kind
	lastTier, lastLine int
	lastID             []byte
	lastHash           uint64
	refsDone           bool // every endpoint has been joined
	// problems and warnings still missing their relationship's words, by
	// the relationship's tier and line (see pendKey)
	pend map[uint64][]pending
	// distinct ids
	nodes, rels int64
	dec         recordDecoder
	rd          Reader // parses records back for reparse
	// table is the node table (nil: the endpoints are sorted and joined);
	// with it, the endpoints' problems and warnings and the duplicates
	// wait for finishTable, which lists them in the join's order.
	table                *nodeTable
	batch                relBatch
	dangling, mismatched endHeap
	dupNodes, dupRels    []Problem
}

// pending is a listed problem (or warning) waiting for its relationship.
type pending struct {
	warning    bool
	idx        int // in the report's Problems (or Warnings)
	end        byte
	node       string
	nodeLabels []string // sorted; warnings only
}

func pendKey(tier, line int) uint64 { return uint64(tier)<<40 | uint64(line) }

// recCursor is a tier's current record item, decoded; its slices alias the
// item, valid until the tier's stream advances.
type recCursor struct {
	ok    bool
	kind  Kind
	id    []byte
	line  int
	hash  uint64 // of a node's labels
	canon []byte
	// a relationship's endpoints and the hashes of their labels
	start, end         []byte
	startHash, endHash uint64
}

// refCursor is a tier's current endpoint item, decoded likewise.
type refCursor struct {
	ok   bool
	id   []byte
	line int
	end  byte
	hash uint64
}

// outBatch gathers records for one tier's Iterator.
type outBatch struct {
	last  int // bytes of canonical lines in the batch sent last
	recs  []Record
	ids   []byte
	ends  []int
	canon []byte
}

// A batch goes out at this many records or bytes of canonical lines.
const (
	outRecords = 512
	outBytes   = 256 << 10
)

func (m *captureMerge) close() {
	for _, it := range append(m.recs, m.refs...) {
		if it != nil {
			it.Close()
		}
	}
}

func (m *captureMerge) run(ctx context.Context) error {
	n := len(m.c.tiers)
	m.rec, m.ref, m.out = make([]recCursor, n), make([]refCursor, n), make([]outBatch, n)
	for i := range n {
		if err := m.nextRec(i); err != nil {
			return err
		}
		if m.table != nil {
			continue
		}
		if err := m.nextRef(i); err != nil {
			return err
		}
	}
	if m.table != nil {
		m.refsDone = true // no endpoints to join
	}
	for {
		t := m.minRec()
		if t < 0 {
			break
		}
		cur := &m.rec[t]
		if cur.kind == KindRelationship && !m.refsDone {
			// Past the last node: every endpoint left dangles.
			if err := m.join(nil); err != nil {
				return err
			}
		}
		if cur.kind == KindRelationship && len(m.pend) > 0 {
			if err := m.fill(t, cur); err != nil {
				return err
			}
		}
		if cur.kind == KindRelationship && m.table != nil {
			if err := m.lookEnds(t, cur); err != nil {
				return err
			}
		}
		if m.have && cur.kind == m.lastKind && bytes.Equal(cur.id, m.lastID) {
			m.duplicate(t, cur)
		} else {
			m.have, m.lastKind, m.lastTier, m.lastLine = true, cur.kind, t, cur.line
			m.lastID = append(m.lastID[:0], cur.id...)
			m.lastHash = cur.hash
			if cur.kind == KindNode {
				m.nodes++
				var err error
				if m.table != nil {
					err = m.table.insert(cur.id, cur.hash)
				} else {
					err = m.join(cur)
				}
				if err != nil {
					return err
				}
			} else {
				m.rels++
			}
			if err := m.forward(ctx, t, cur); err != nil {
				return err
			}
		}
		if err := m.nextRec(t); err != nil {
			return err
		}
	}
	if !m.refsDone {
		if err := m.join(nil); err != nil {
			return err
		}
	}
	if m.table != nil {
		if err := m.resolve(); err != nil {
			return err
		}
	}
	if len(m.pend) > 0 {
		// Every endpoint comes from a relationship record of its tier.
		return fmt.Errorf("check graph: %d problems without their relationship record: %w", len(m.pend), errCorruptItem)
	}
	for t := range m.out {
		if err := m.flush(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// minRec returns the tier whose record comes next (the lowest tier of equal
// ones, so that the first definition is the first tier's), or -1 at the end.
// Tiers are few: a linear scan beats a heap.
func (m *captureMerge) minRec() int {
	best := -1
	for i := range m.rec {
		c := &m.rec[i]
		if !c.ok {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := &m.rec[best]
		if c.kind < b.kind || c.kind == b.kind && bytes.Compare(c.id, b.id) < 0 {
			best = i
		}
	}
	return best
}

func (m *captureMerge) minRef() int {
	best := -1
	for i := range m.ref {
		if m.ref[i].ok && (best < 0 || bytes.Compare(m.ref[i].id, m.ref[best].id) < 0) {
			best = i
		}
	}
	return best
}

// pull returns the next item of it; ok is false at its end.
func pull(it *mergeIter, what string) (item []byte, ok bool, err error) {
	item, err = it.next()
	if err == io.EOF {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	return item, true, nil
}

func (m *captureMerge) nextRec(t int) error {
	c := &m.rec[t]
	item, ok, err := pull(m.recs[t], "sort records")
	if c.ok = ok; !ok {
		return err
	}
	return decodeRecItem(&m.dec, item, c)
}

// decodeRecItem decodes a record item of a Capture (see TierSorter.Add)
// into c, whose slices alias item.
func decodeRecItem(d *recordDecoder, item []byte, c *recCursor) error {
	if len(item) < 2 || item[0] > byte(KindRelationship) {
		return fmt.Errorf("sort records: %w", errCorruptItem)
	}
	d.b, d.err = item[1:], false
	c.kind = Kind(item[0])
	c.id = d.bytes()
	c.line = int(d.uvarint())
	c.hash = 0
	if c.kind == KindNode {
		c.hash = d.uint64()
	} else {
		c.start, c.startHash = d.bytes(), d.uint64()
		c.end, c.endHash = d.bytes(), d.uint64()
	}
	if d.err {
		return fmt.Errorf("sort records: %w", errCorruptItem)
	}
	c.canon = d.b
	return nil
}

func (m *captureMerge) nextRef(t int) error {
	c := &m.ref[t]
	item, ok, err := pull(m.refs[t], "check graph")
	if c.ok = ok; !ok {
		return err
	}
	d := &m.dec
	d.b, d.err = item, false
	c.id = d.bytes()
	c.line = int(d.uvarint())
	if d.err || len(d.b) != 9 {
		return fmt.Errorf("check graph: %w", errCorruptItem)
	}
	c.end, c.hash = d.b[0], binary.LittleEndian.Uint64(d.b[1:])
	return nil
}

// join takes every endpoint up to node's id: those before it name no node
// (dangling), those at it are compared with its labels. A nil node takes
// them all, as dangling.
func (m *captureMerge) join(node *recCursor) error {
	var nodeLabels []string // node's sorted labels, once a warning needs them
	for {
		r := m.minRef()
		if r < 0 {
			if node == nil {
				m.refsDone = true
			}
			return nil
		}
		e := &m.ref[r]
		c := -1
		if node != nil {
			c = bytes.Compare(e.id, node.id)
		}
		if c > 0 {
			return nil
		}
		switch {
		case c < 0:
			if m.rep.roomForProblem(m.c.MaxProblems) {
				m.rep.Problems = append(m.rep.Problems, Problem{Tier: m.c.tiers[r].name, Line: e.line, Kind: "dangling"})
				m.wait(r, e, pending{idx: len(m.rep.Problems) - 1})
			}
		case e.hash != node.hash && m.rep.roomForWarning(m.c.MaxWarnings):
			if nodeLabels == nil {
				rec, err := m.reparse(node.canon, r)
				if err != nil {
					return err
				}
				nodeLabels = sortedCopy(rec.Labels)
			}
			m.rep.Warnings = append(m.rep.Warnings, "")
			m.wait(r, e, pending{warning: true, idx: len(m.rep.Warnings) - 1, nodeLabels: nodeLabels})
		}
		if err := m.nextRef(r); err != nil {
			return err
		}
	}
}

// wait files a listed problem until its relationship's record comes by.
func (m *captureMerge) wait(tier int, e *refCursor, p pending) {
	if m.pend == nil {
		m.pend = make(map[uint64][]pending)
	}
	p.end, p.node = e.end, string(e.id)
	k := pendKey(tier, e.line)
	m.pend[k] = append(m.pend[k], p)
}

// fill words the problems waiting for the relationship at cur.
func (m *captureMerge) fill(t int, cur *recCursor) error {
	k := pendKey(t, cur.line)
	ps, ok := m.pend[k]
	if !ok {
		return nil
	}
	delete(m.pend, k)
	rec, err := m.reparse(cur.canon, t)
	if err != nil {
		return err
	}
	where := m.where(t, cur.line)
	for _, p := range ps {
		if !p.warning {
			pr := &m.rep.Problems[p.idx]
			pr.ID = rec.ID
			pr.Detail = fmt.Sprintf("relationship %s (%s) at %s: %s node %s does not exist", rec.ID, rec.Type, where, endName(p.end), p.node)
			continue
		}
		labels := rec.StartLabels
		if p.end == 1 {
			labels = rec.EndLabels
		}
		m.rep.Warnings[p.idx] = fmt.Sprintf("relationship %s at %s: %s labels %s differ from node %s's %s",
			rec.ID, where, endName(p.end), labelList(sortedCopy(labels)), p.node, labelList(p.nodeLabels))
	}
	return nil
}

// reparse reads a record back from its canonical line (only for the words
// of a problem or warning).
func (m *captureMerge) reparse(canon []byte, tier int) (*Record, error) {
	m.rd.tier = m.c.tiers[tier].name
	rec, reason := m.rd.parse(canon)
	if reason != "" {
		return nil, fmt.Errorf("check graph: read back a sorted record of tier %s: %s", m.rd.tier, reason)
	}
	return rec, nil
}

func sortedCopy(l []string) []string {
	c := append([]string{}, l...)
	slices.Sort(c)
	return c
}

// duplicate reports a second definition of the id merged last.
func (m *captureMerge) duplicate(t int, cur *recCursor) {
	p := func() Problem {
		return Problem{Tier: m.c.tiers[t].name, Line: cur.line,
			ID: string(cur.id), Kind: "duplicate", Detail: fmt.Sprintf("%s %s defined at %s and %s",
				cur.kind, cur.id, m.where(m.lastTier, m.lastLine), m.where(t, cur.line))}
	}
	if m.table != nil {
		m.duplicateInTable(p, cur.kind)
		return
	}
	if !m.rep.roomForProblem(m.c.MaxProblems) {
		return
	}
	m.rep.Problems = append(m.rep.Problems, p())
}

func (m *captureMerge) where(tier, line int) string {
	return m.c.tiers[tier].name + ":" + strconv.Itoa(line)
}

// forward adds the record to its tier's batch, sending the batch when full.
func (m *captureMerge) forward(ctx context.Context, t int, cur *recCursor) error {
	o := &m.out[t]
	if len(o.recs) > 0 && (len(o.recs) >= outRecords || len(o.canon)+len(cur.canon) > cap(o.canon)) {
		if err := m.flush(ctx, t); err != nil {
			return err
		}
	}
	if o.canon == nil {
		select {
		case b := <-m.c.outs[t].free:
			if cap(b.canon) >= len(cur.canon) {
				o.canon, o.recs = b.canon[:0], b.recs[:0]
			}
		default:
		}
	}
	if o.canon == nil {
		// Sized by the last batch: a batch usually ends at outRecords, and
		// a buffer of outBytes for every one was mostly never touched
		// (but allocated, zeroed and collected).
		size := outBytes
		if o.last > 0 {
			size = min(outBytes, o.last+o.last/8)
		}
		o.canon = make([]byte, 0, max(size, len(cur.canon)))
		o.recs = make([]Record, 0, outRecords)
	}
	start := len(o.canon)
	o.canon = append(o.canon, cur.canon...)
	o.recs = append(o.recs, Record{Kind: cur.kind, Line: cur.line, Canonical: o.canon[start:len(o.canon):len(o.canon)]})
	o.ids = append(o.ids, cur.id...)
	o.ends = append(o.ends, len(o.ids))
	return nil
}

// flush hands a tier's batch to its Iterator. The records' ids share one
// string; the batch's buffers go with it, and come back on the Iterator's
// free channel once it is done with them.
func (m *captureMerge) flush(ctx context.Context, t int) error {
	o := &m.out[t]
	if len(o.recs) == 0 {
		return nil
	}
	ids := string(o.ids)
	prev := 0
	for i := range o.recs {
		o.recs[i].ID = ids[prev:o.ends[i]]
		prev = o.ends[i]
	}
	b := recBatch{recs: o.recs, canon: o.canon}
	o.last = len(o.canon)
	o.recs, o.canon, o.ids, o.ends = nil, nil, o.ids[:0], o.ends[:0]
	if err := ctx.Err(); err != nil {
		return err // select would pick a ready send at random
	}
	out := m.c.outs[t]
	select {
	case out.ch <- b:
	case <-out.gone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// finish completes the check's report.
func (m *captureMerge) finish() *Report {
	tiers := map[string]*Stats{}
	for _, t := range m.c.tiers {
		if st, ok := tiers[t.name]; ok {
			// A name given twice is one tier, as the Checker counts it.
			addStats(st, t.stats)
		} else {
			tiers[t.name] = t.stats
		}
	}
	if m.table != nil {
		m.finishTable()
	}
	m.rep.finish(tiers, m.nodes, m.rels)
	return &m.rep
}
