package graph

import (
	"cmp"
	"container/heap"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"unsafe"
)

// nodeTable is the set of a Capture's nodes, each with its label list, for
// the dangling check when it fits in memory (see Capture.open). It is
// filled as the nodes come out of the merge and asked for both endpoints
// of every relationship record after them.
//
// A node is known by 95 bits of two keyed hashes of its id, not by the id:
// 16 bytes a node where the ids themselves would cost several times that.
// An endpoint naming no node passes for an existing one only if all 95 bits
// match one of the n nodes: about n * 2^-95 per endpoint, 2^-65 for a
// billion-node graph; the seeds are random, so no graph can be made to
// collide.
type nodeTable struct {
	slots  []nodeSlot // open addressing, linear probing; h1 == 0: empty
	seed1  maphash.Seed
	seed2  maphash.Seed
	lists  []tableList       // by index; 0 is the empty list
	listIx map[uint64]uint32 // labelHash -> index in lists
}

type nodeSlot struct {
	h1   uint64
	h2   uint32
	list uint32
}

type tableList struct {
	hash   uint64
	sorted []string
}

// tableSlots is the number of slots of a table for up to nodes nodes, a
// load of at most 0.8, or 0 if they take more than budget bytes. (A larger
// table probes fewer slots, but nearly every lookup misses the CPU's caches
// anyway, and more often in a larger table: twice the nodes measured no
// faster.)
func tableSlots(nodes, budget int64) int64 {
	n := nodes + nodes/4 + 1
	if n*slotSize > budget {
		return 0
	}
	return n
}

const slotSize = int64(unsafe.Sizeof(nodeSlot{}))

// newNodeTable returns a table of n slots (for up to 0.8 n nodes) whose label
// lists are among lists (by labelHash).
func newNodeTable(n int64, lists map[uint64][]string) *nodeTable {
	t := &nodeTable{
		slots: make([]nodeSlot, n),
		seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		lists:  []tableList{{}},
		listIx: map[uint64]uint32{0: 0},
	}
	for h, l := range lists {
		t.listIx[h] = uint32(len(t.lists))
		t.lists = append(t.lists, tableList{hash: h, sorted: sortedCopy(l)})
	}
	return t
}

// hash returns id's two hashes and its home slot.
func (t *nodeTable) hash(id []byte) (h1 uint64, h2 uint32, home int) {
	h1 = maphash.Bytes(t.seed1, id) | 1
	h2 = uint32(maphash.Bytes(t.seed2, id))
	hi, _ := bits.Mul64(h1, uint64(len(t.slots)))
	return h1, h2, int(hi)
}

// probe returns the slot of the id hashing to h1, h2 from home on: its own,
// or the empty one where it belongs.
func (t *nodeTable) probe(h1 uint64, h2 uint32, home int) *nodeSlot {
	for i := home; ; i++ {
		if i == len(t.slots) {
			i = 0
		}
		s := &t.slots[i]
		if s.h1 == 0 || s.h1 == h1 && s.h2 == h2 {
			return s
		}
	}
}

// insert adds a node whose labels hash to labelHash. The merge passes each
// id once (a second definition is a duplicate, not inserted), and the table
// has room for every node record.
func (t *nodeTable) insert(id []byte, labelHash uint64) error {
	ix, ok := t.listIx[labelHash]
	if !ok {
		return fmt.Errorf("check graph: node %s has labels its tier did not list: %w", id, errCorruptItem)
	}
	h1, h2, home := t.hash(id)
	s := t.probe(h1, h2, home)
	if s.h1 == 0 {
		*s = nodeSlot{h1: h1, h2: h2, list: ix}
	}
	return nil
}

func (t *nodeTable) list(s *nodeSlot) *tableList {
	if s.h1 == 0 {
		return nil
	}
	return &t.lists[s.list]
}

// A relationship waits in a batch for the lookups of its endpoints: the
// table is far larger than the CPU's caches, and a lookup waits for memory
// (about 140 ns, most of the check's time, when each relationship looked
// its endpoints up as it passed). resolve first reads the home slot of
// every endpoint of the batch, loads that do not depend on each other and
// so wait for memory together, then looks them up from the cache.
const (
	endBatch      = 256
	endBatchBytes = 256 << 10 // of ids and canonical lines
)

type endLookup struct {
	h1   uint64
	h2   uint32
	home int
	hash uint64 // of the endpoint's labels
}

type batchedRel struct {
	tier, line int
	ends       [2]endLookup
	ids        [3]int // offsets of the start id, end id and canonical line in buf
	stop       int    // end of the canonical line in buf
}

type relBatch struct {
	rels []batchedRel
	buf  []byte
	sink uint64 // keeps the reads of resolve
}

// lookEnds files a relationship record for the check of its endpoints
// against the table (see resolve).
func (m *captureMerge) lookEnds(t int, cur *recCursor) error {
	b := &m.batch
	r := batchedRel{tier: t, line: cur.line}
	for end, id := range [2][]byte{cur.start, cur.end} {
		e := &r.ends[end]
		e.h1, e.h2, e.home = m.table.hash(id)
		e.hash = cur.startHash
		if end == 1 {
			e.hash = cur.endHash
		}
		r.ids[end] = len(b.buf)
		b.buf = append(b.buf, id...)
	}
	r.ids[2] = len(b.buf)
	b.buf = append(b.buf, cur.canon...)
	r.stop = len(b.buf)
	b.rels = append(b.rels, r)
	if len(b.rels) >= endBatch || len(b.buf) >= endBatchBytes {
		return m.resolve()
	}
	return nil
}

// resolve checks the endpoints of the batched relationships: a missing node
// is a dangling endpoint, a node with other labels than the endpoint's a
// warning. Both are counted, and kept only while among the first
// MaxProblems (MaxWarnings) in the order the endpoint sort would join them
// (see finishTable).
func (m *captureMerge) resolve() error {
	b, tb := &m.batch, m.table
	var sink uint64
	for i := range b.rels {
		r := &b.rels[i]
		sink += tb.slots[r.ends[0].home].h1 + tb.slots[r.ends[1].home].h1
	}
	b.sink += sink
	for i := range b.rels {
		r := &b.rels[i]
		if err := m.checkEnds(r, b.buf); err != nil {
			return err
		}
	}
	b.rels, b.buf = b.rels[:0], b.buf[:0]
	return nil
}

func (m *captureMerge) checkEnds(r *batchedRel, buf []byte) error {
	var rec *Record // parsed once a problem needs its words
	words := func() (*Record, error) {
		if rec != nil {
			return rec, nil
		}
		var err error
		rec, err = m.reparse(buf[r.ids[2]:r.stop], r.tier)
		return rec, err
	}
	for end := range 2 {
		l := &r.ends[end]
		id := buf[r.ids[end]:r.ids[end+1]]
		node := m.table.list(m.table.probe(l.h1, l.h2, l.home))
		if node != nil && node.hash == l.hash {
			continue
		}
		kept, max := &m.mismatched, m.c.MaxWarnings
		if node == nil {
			m.rep.ProblemCount++
			kept, max = &m.dangling, m.c.MaxProblems
		} else {
			m.rep.WarningCount++
		}
		e := endEntry{tier: r.tier, line: r.line, end: byte(end)}
		if !kept.wants(id, &e, max) {
			continue
		}
		rel, err := words()
		if err != nil {
			return err
		}
		e.node = string(id)
		where := m.where(r.tier, r.line)
		if node == nil {
			e.problem = Problem{Tier: m.c.tiers[r.tier].name, Line: r.line, ID: rel.ID, Kind: "dangling",
				Detail: fmt.Sprintf("relationship %s (%s) at %s: %s node %s does not exist", rel.ID, rel.Type, where, endName(e.end), id)}
		} else {
			labels := rel.StartLabels
			if end == 1 {
				labels = rel.EndLabels
			}
			e.warning = fmt.Sprintf("relationship %s at %s: %s labels %s differ from node %s's %s",
				rel.ID, where, endName(e.end), labelList(sortedCopy(labels)), id, labelList(node.sorted))
		}
		kept.add(e, max)
	}
	return nil
}

// duplicateInTable files a duplicate in table mode, where the listing waits
// for finishTable.
func (m *captureMerge) duplicateInTable(p func() Problem, kind Kind) {
	m.rep.ProblemCount++
	list := &m.dupNodes
	if kind == KindRelationship {
		list = &m.dupRels
	}
	if len(*list) < m.c.MaxProblems {
		*list = append(*list, p())
	}
}

// finishTable lists the problems and warnings of table mode in the order the
// endpoint sort's join lists them: during the nodes, in id order, each
// dangling endpoint (by node id, then tier, line and end) and each
// duplicate node; then the duplicate relationships. Each list is cut at its
// cap, as the join cuts it.
func (m *captureMerge) finishTable() {
	dang := m.dangling.sorted()
	nodes := m.dupNodes
	for len(m.rep.Problems) < m.c.MaxProblems && (len(nodes) > 0 || len(dang) > 0) {
		if len(dang) == 0 || len(nodes) > 0 && nodes[0].ID < dang[0].node {
			m.rep.Problems, nodes = append(m.rep.Problems, nodes[0]), nodes[1:]
		} else {
			m.rep.Problems, dang = append(m.rep.Problems, dang[0].problem), dang[1:]
		}
	}
	for _, p := range m.dupRels {
		if len(m.rep.Problems) >= m.c.MaxProblems {
			break
		}
		m.rep.Problems = append(m.rep.Problems, p)
	}
	for _, e := range m.mismatched.sorted() {
		m.rep.Warnings = append(m.rep.Warnings, e.warning)
	}
}

// endEntry is a problem or warning of one endpoint, with its place in the
// endpoint sort's order.
type endEntry struct {
	node    string
	tier    int
	line    int
	end     byte
	problem Problem
	warning string
}

func compareEnd(a, b *endEntry) int {
	if c := cmp.Compare(a.node, b.node); c != 0 {
		return c
	}
	if a.tier != b.tier {
		return a.tier - b.tier
	}
	if a.line != b.line {
		return a.line - b.line
	}
	return int(a.end) - int(b.end)
}

// endHeap keeps the first entries in order, up to a cap: a max-heap, whose
// root is the entry to drop for an earlier one.
type endHeap []endEntry

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return compareEnd(&h[i], &h[j]) > 0 }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(endEntry)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// wants reports whether the entry e for node would be kept under the cap
// (e.node is not set yet: the caller words it only if so).
func (h *endHeap) wants(node []byte, e *endEntry, max int) bool {
	if len(*h) < max {
		return true
	}
	if max <= 0 {
		return false
	}
	probe := *e
	probe.node = string(node)
	return compareEnd(&probe, &(*h)[0]) < 0
}

// add keeps e, dropping the last entry kept if the cap is reached.
func (h *endHeap) add(e endEntry, max int) {
	if len(*h) < max {
		heap.Push(h, e)
		return
	}
	(*h)[0] = e
	heap.Fix(h, 0)
}

// sorted returns the entries in order.
func (h *endHeap) sorted() []endEntry {
	s := slices.Clone(*h)
	slices.SortFunc(s, func(a, b endEntry) int { return compareEnd(&a, &b) })
	return s
}
