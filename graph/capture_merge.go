package graph

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	lastID, lastLabels []byte
	refsDone           bool // every endpoint has been joined
	// distinct ids
	nodes, rels int64
	dec         recordDecoder
}

// recCursor is a tier's current record item, decoded; its slices alias the
// item, valid until the tier's stream advances.
type recCursor struct {
	ok     bool
	kind   Kind
	id     []byte
	line   int
	labels []byte // encoded sorted list
	canon  []byte
}

// refCursor is a tier's current endpoint item, decoded likewise.
type refCursor struct {
	ok     bool
	id     []byte
	line   int
	end    byte
	labels []byte
	relID  []byte
	typ    []byte
}

// outBatch gathers records for one tier's Iterator.
type outBatch struct {
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
		if err := m.nextRef(i); err != nil {
			return err
		}
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
		if m.have && cur.kind == m.lastKind && bytes.Equal(cur.id, m.lastID) {
			m.duplicate(t, cur)
		} else {
			m.have, m.lastKind, m.lastTier, m.lastLine = true, cur.kind, t, cur.line
			m.lastID = append(m.lastID[:0], cur.id...)
			m.lastLabels = append(m.lastLabels[:0], cur.labels...)
			if cur.kind == KindNode {
				m.nodes++
				if err := m.join(cur.id); err != nil {
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

func (m *captureMerge) nextRec(t int) error {
	item, err := m.recs[t].next()
	c := &m.rec[t]
	if err == io.EOF {
		c.ok = false
		return nil
	}
	if err != nil {
		return fmt.Errorf("sort records: %w", err)
	}
	if len(item) < 2 || item[0] > byte(KindRelationship) {
		return fmt.Errorf("sort records: %w", errCorruptItem)
	}
	d := &m.dec
	d.b, d.err = item[1:], false
	c.kind = Kind(item[0])
	c.id = d.bytes()
	c.line = int(d.uvarint())
	start := d.b
	if n := d.uvarint(); n > 0 {
		for i := uint64(1); i < n && !d.err; i++ {
			d.bytes()
		}
	}
	if d.err {
		return fmt.Errorf("sort records: %w", errCorruptItem)
	}
	c.labels = start[:len(start)-len(d.b)]
	c.canon = d.b
	c.ok = true
	return nil
}

func (m *captureMerge) nextRef(t int) error {
	item, err := m.refs[t].next()
	c := &m.ref[t]
	if err == io.EOF {
		c.ok = false
		return nil
	}
	if err != nil {
		return fmt.Errorf("check graph: %w", err)
	}
	d := &m.dec
	d.b, d.err = item, false
	c.id = d.bytes()
	c.line = int(d.uvarint())
	if len(d.b) == 0 {
		return fmt.Errorf("check graph: %w", errCorruptItem)
	}
	c.end, d.b = d.b[0], d.b[1:]
	start := d.b
	if n := d.uvarint(); n > 0 {
		for i := uint64(1); i < n && !d.err; i++ {
			d.bytes()
		}
	}
	c.labels = start[:len(start)-len(d.b)]
	c.relID = d.bytes()
	c.typ = d.bytes()
	if d.err {
		return fmt.Errorf("check graph: %w", errCorruptItem)
	}
	c.ok = true
	return nil
}

// join takes every endpoint up to node id: those before it name no node
// (dangling), those at it are compared with its labels. A nil id takes them
// all, as dangling.
func (m *captureMerge) join(id []byte) error {
	for {
		r := m.minRef()
		if r < 0 {
			if id == nil {
				m.refsDone = true
			}
			return nil
		}
		e := &m.ref[r]
		c := -1
		if id != nil {
			c = bytes.Compare(e.id, id)
		}
		if c > 0 {
			return nil
		}
		if c < 0 {
			if m.countProblem() {
				m.rep.Problems = append(m.rep.Problems, Problem{Tier: m.c.tiers[r].name, Line: e.line,
					ID: string(e.relID), Kind: "dangling", Detail: fmt.Sprintf("relationship %s (%s) at %s: %s node %s does not exist",
						e.relID, e.typ, m.where(r, e.line), endName(e.end), e.id)})
			}
		} else if !bytes.Equal(e.labels, m.lastLabels) && m.countWarning() {
			m.rep.Warnings = append(m.rep.Warnings, fmt.Sprintf("relationship %s at %s: %s labels %s differ from node %s's %s",
				e.relID, m.where(r, e.line), endName(e.end), labelList(m.labelsOf(e.labels)), e.id, labelList(m.labelsOf(m.lastLabels))))
		}
		if err := m.nextRef(r); err != nil {
			return err
		}
	}
}

// labelsOf decodes an encoded label list (only for a warning's words).
func (m *captureMerge) labelsOf(b []byte) []string {
	d := recordDecoder{b: b}
	return d.list()
}

// duplicate reports a second definition of the id merged last.
func (m *captureMerge) duplicate(t int, cur *recCursor) {
	if !m.countProblem() {
		return
	}
	m.rep.Problems = append(m.rep.Problems, Problem{Tier: m.c.tiers[t].name, Line: cur.line,
		ID: string(cur.id), Kind: "duplicate", Detail: fmt.Sprintf("%s %s defined at %s and %s",
			cur.kind, cur.id, m.where(m.lastTier, m.lastLine), m.where(t, cur.line))})
}

func (m *captureMerge) where(tier, line int) string {
	return m.c.tiers[tier].name + ":" + strconv.Itoa(line)
}

func (m *captureMerge) countProblem() bool {
	m.rep.ProblemCount++
	return len(m.rep.Problems) < m.c.MaxProblems
}

func (m *captureMerge) countWarning() bool {
	m.rep.WarningCount++
	return len(m.rep.Warnings) < m.c.MaxWarnings
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
		o.canon = make([]byte, 0, max(outBytes, len(cur.canon)))
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
// string; the batch's buffers go with it (the consumer may keep records).
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
	recs := o.recs
	o.recs, o.canon, o.ids, o.ends = nil, nil, o.ids[:0], o.ends[:0]
	if err := ctx.Err(); err != nil {
		return err // select would pick a ready send at random
	}
	out := m.c.outs[t]
	select {
	case out.ch <- recs:
	case <-out.gone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// finish completes the check's report.
func (m *captureMerge) finish() *Report {
	r := &m.rep
	r.OK = r.ProblemCount == 0
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	r.Stats = CheckStats{Tiers: map[string]*Stats{}, Total: *newStats()}
	for _, t := range m.c.tiers {
		if st, ok := r.Stats.Tiers[t.name]; ok {
			// A name given twice is one tier, as the Checker counts it.
			addStats(st, t.stats)
		} else {
			r.Stats.Tiers[t.name] = t.stats
		}
		addStats(&r.Stats.Total, t.stats)
	}
	r.Stats.Total.Nodes, r.Stats.Total.Relationships = m.nodes, m.rels
	return r
}

func addStats(dst, src *Stats) {
	dst.Nodes += src.Nodes
	dst.Relationships += src.Relationships
	for k, v := range src.Labels {
		dst.Labels[k] += v
	}
	for k, v := range src.Types {
		dst.Types[k] += v
	}
}
