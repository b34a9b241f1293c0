package oplog

// The random graphs and mutation logs of the property test (property_test.go).

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/graph"
)

// ---------------------------------------------------------------- generator

// pgSet is an ordered set of ids (deterministic random picks).
type pgSet struct {
	ids []string
	pos map[string]int
}

func (s *pgSet) add(id string) {
	if s.pos == nil {
		s.pos = map[string]int{}
	}
	if _, ok := s.pos[id]; ok {
		return
	}
	s.pos[id] = len(s.ids)
	s.ids = append(s.ids, id)
}

func (s *pgSet) remove(id string) {
	i, ok := s.pos[id]
	if !ok {
		return
	}
	last := s.ids[len(s.ids)-1]
	s.ids[i], s.pos[last] = last, i
	s.ids = s.ids[:len(s.ids)-1]
	delete(s.pos, id)
}

func (s *pgSet) has(id string) bool { _, ok := s.pos[id]; return ok }

func (s *pgSet) pick(r *rand.Rand) string { return s.ids[r.IntN(len(s.ids))] }

// pgRel is a live relationship as the generator sees it.
type pgRel struct{ tier, start, end string }

// pgen generates a graph and a log. Its view of the graph (what is live
// where) only steers the choices; the model computes the truth.
type pgen struct {
	r           *rand.Rand
	tiers       []string
	nodeTier    map[string]string
	live        pgSet // live node ids
	dead        pgSet // deleted node ids
	rels        map[string]*pgRel
	liveRels    pgSet
	nNode, nRel int
}

func newPgen(seed uint64) *pgen {
	return &pgen{
		r:        rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		tiers:    []string{"fast", "warm", "cold"},
		nodeTier: map[string]string{},
		rels:     map[string]*pgRel{},
	}
}

func (g *pgen) chance(p float64) bool { return g.r.Float64() < p }

func pgPick[T any](r *rand.Rand, l []T) T { return l[r.IntN(len(l))] }

// id returns a new id numbered n: mostly decimal, sometimes with a prefix
// that sorts elsewhere in byte order.
func (g *pgen) id(n int) string {
	s := strconv.Itoa(n)
	switch g.r.IntN(12) {
	case 0:
		return "é" + s
	case 1:
		return "x" + s
	case 2:
		return "日" + s
	case 3:
		return "a b" + s
	case 4:
		return "Z" + s
	}
	return s
}

func (g *pgen) newNodeID() string { g.nNode++; return g.id(g.nNode) }
func (g *pgen) newRelID() string  { g.nRel++; return g.id(g.nRel) }

func (g *pgen) value(depth int) any {
	switch k := g.r.IntN(11); {
	case k == 0:
		return nil
	case k == 1:
		return g.chance(0.5)
	case k == 2:
		return pjNum(strconv.Itoa(g.r.IntN(2000) - 1000))
	case k == 3:
		return pjNum(pgPick(g.r, []string{"12345678901234567890123", "-9007199254740993", "9007199254740993", "0"}))
	case k == 4:
		return pjNum(pgPick(g.r, []string{"1.50", "-0.125", "3.0", "0.5", "2.718281828459045235360287", "-12.00"}))
	case k <= 7:
		return pgPick(g.r, []string{"Ada", "é", "日本語", "😀 emoji", `a"b`, `back\slash`, "line\nbreak", "tab\there", "ctl\x01", "", "/path/x", "aaaa"})
	case k == 8 && depth < 2:
		l := []any{}
		for i := g.r.IntN(4); i > 0; i-- {
			l = append(l, g.value(depth+1))
		}
		return l
	case k == 9 && depth < 2:
		return g.props(depth + 1)
	}
	return pjNum(strconv.Itoa(g.r.IntN(100)))
}

func (g *pgen) props(depth int) map[string]any {
	m := map[string]any{}
	for i := g.r.IntN(4); i > 0; i-- {
		m[pgPick(g.r, []string{"name", "age", "score", "tags", "meta", "big", "zz", "ünï", "A", "a b", "since"})] = g.value(depth)
	}
	return m
}

func (g *pgen) labels() []any {
	l := []any{}
	for i := g.r.IntN(3); i >= 0; i-- {
		l = append(l, pgPick(g.r, []string{"Person", "Post", "Tag", "Ünï", "City", "Person"}))
	}
	return l
}

func (g *pgen) nodeRec(id string) *pmRec {
	v := map[string]any{"type": "node", "id": id}
	if g.chance(0.8) {
		v["labels"] = g.labels()
	}
	if g.chance(0.8) {
		v["properties"] = g.props(0)
	}
	return pmNewRec(v)
}

func (g *pgen) endpoint(id string) map[string]any {
	e := map[string]any{"id": id}
	if g.chance(0.5) {
		e["labels"] = g.labels()
	}
	return e
}

func (g *pgen) relRec(id, start, end string) *pmRec {
	v := map[string]any{
		"type": "relationship", "id": id,
		"label": pgPick(g.r, []string{"KNOWS", "LIKES", "HAS_TAG", "REPLY_OF"}),
		"start": g.endpoint(start), "end": g.endpoint(end),
	}
	if g.chance(0.7) {
		v["properties"] = g.props(0)
	}
	return pmNewRec(v)
}

// anyNode returns an endpoint: mostly a live node, sometimes a deleted or
// never created one (a dangling relationship is legal log content).
func (g *pgen) anyNode() string {
	switch {
	case len(g.live.ids) > 0 && g.chance(0.9):
		return g.live.pick(g.r)
	case len(g.dead.ids) > 0 && g.chance(0.5):
		return g.dead.pick(g.r)
	}
	return "ghost" + strconv.Itoa(g.r.IntN(3))
}

func (g *pgen) otherTier(t string) string {
	for {
		n := pgPick(g.r, append(g.tiers, "archive"))
		if n != t {
			return n
		}
	}
}

// The generator's view of the effects.
func (g *pgen) sawNode(id, tier string) { g.live.add(id); g.dead.remove(id); g.nodeTier[id] = tier }
func (g *pgen) sawRel(id string, r *pgRel) {
	g.rels[id] = r
	g.liveRels.add(id)
}
func (g *pgen) sawRelDelete(id string) { g.liveRels.remove(id); delete(g.rels, id) }

// incident returns the live relationships at node id, in a stable order.
func (g *pgen) incident(id string) []string {
	var out []string
	for _, rid := range g.liveRels.ids {
		if r := g.rels[rid]; r.start == id || r.end == id {
			out = append(out, rid)
		}
	}
	sort.Strings(out)
	return out
}

func (g *pgen) sawNodeDelete(id string) {
	for _, rid := range g.incident(id) {
		g.sawRelDelete(rid)
	}
	g.live.remove(id)
	g.dead.add(id)
}

func pgUpsert(tier string, r *pmRec) *pmEntry { return &pmEntry{tier: tier, up: r} }
func pgDel(tier string, kind graph.Kind, id string) *pmEntry {
	return &pmEntry{tier: tier, delKind: kind, delID: id}
}

// op returns the records of one random mutation (several for a move).
func (g *pgen) op(allowMove bool) []*pmEntry {
	for {
		switch k := g.r.IntN(100); {
		case k < 18: // new node
			id, tier := g.newNodeID(), pgPick(g.r, append(g.tiers, "archive"))
			g.sawNode(id, tier)
			return []*pmEntry{pgUpsert(tier, g.nodeRec(id))}
		case k < 38: // new relationship
			id, tier := g.newRelID(), pgPick(g.r, g.tiers)
			s, e := g.anyNode(), g.anyNode()
			if g.chance(0.05) {
				e = s
			}
			g.sawRel(id, &pgRel{tier, s, e})
			return []*pmEntry{pgUpsert(tier, g.relRec(id, s, e))}
		case k < 48 && len(g.live.ids) > 0: // update a node
			id := g.live.pick(g.r)
			return []*pmEntry{pgUpsert(g.nodeTier[id], g.nodeRec(id))}
		case k < 58 && len(g.liveRels.ids) > 0: // update a relationship
			id := g.liveRels.pick(g.r)
			r := *g.rels[id]
			if g.chance(0.25) { // new endpoints
				r.start, r.end = g.anyNode(), g.anyNode()
			}
			g.sawRel(id, &r)
			return []*pmEntry{pgUpsert(r.tier, g.relRec(id, r.start, r.end))}
		case k < 68 && len(g.live.ids) > 0: // delete a node (detach)
			id := g.live.pick(g.r)
			tier := g.nodeTier[id]
			switch {
			case g.chance(0.1): // from a tier it is not in: a no-op that still detaches
				tier = g.otherTier(tier)
			case g.chance(0.1) && len(g.dead.ids) > 0:
				id = g.dead.pick(g.r)
			}
			g.sawNodeDelete(id)
			return []*pmEntry{pgDel(tier, graph.KindNode, id)}
		case k < 76 && len(g.liveRels.ids) > 0: // delete a relationship
			id := g.liveRels.pick(g.r)
			tier := g.rels[id].tier
			switch {
			case g.chance(0.1): // from a tier it is not in: a no-op
				tier = g.otherTier(tier)
			case g.chance(0.1): // never created
				id = "r" + g.id(g.nRel+1+g.r.IntN(5))
			default:
				g.sawRelDelete(id)
			}
			return []*pmEntry{pgDel(tier, graph.KindRelationship, id)}
		case k < 88 && allowMove && len(g.live.ids) > 0:
			return g.move()
		case k < 93 && len(g.dead.ids) > 0: // a deleted node id comes back
			id := g.dead.pick(g.r)
			tier := pgPick(g.r, g.tiers)
			g.sawNode(id, tier)
			return []*pmEntry{pgUpsert(tier, g.nodeRec(id))}
		case k < 96 && len(g.liveRels.ids) > 0: // the same relationship id in a second tier
			id := g.liveRels.pick(g.r)
			r := g.rels[id]
			return []*pmEntry{pgUpsert(g.otherTier(r.tier), g.relRec(id, r.start, r.end))}
		case k < 98 && len(g.live.ids) > 0: // the same node id in a second tier
			id := g.live.pick(g.r)
			return []*pmEntry{pgUpsert(g.otherTier(g.nodeTier[id]), g.nodeRec(id))}
		}
	}
}

// move moves a node to another tier: delete it (detaching its
// relationships), upsert it elsewhere, upsert again the relationships that
// survive (some moved too, some dropped).
func (g *pgen) move() []*pmEntry {
	id := g.live.pick(g.r)
	from := g.nodeTier[id]
	to := g.otherTier(from)
	var out []*pmEntry
	inc := g.incident(id)
	if g.chance(0.2) && len(inc) > 0 {
		// Upserted before the delete in the same transaction: detached.
		r := g.rels[inc[0]]
		out = append(out, pgUpsert(r.tier, g.relRec(inc[0], r.start, r.end)))
	}
	out = append(out, pgDel(from, graph.KindNode, id))
	old := map[string]pgRel{}
	for _, rid := range inc {
		old[rid] = *g.rels[rid]
	}
	g.sawNodeDelete(id)
	node := pgUpsert(to, g.nodeRec(id))
	g.sawNode(id, to)
	var rels []*pmEntry
	for _, rid := range inc {
		r := old[rid]
		switch {
		case g.chance(0.25): // dropped
			continue
		case g.chance(0.2):
			r.tier = g.otherTier(r.tier)
		}
		g.sawRel(rid, &r)
		rels = append(rels, pgUpsert(r.tier, g.relRec(rid, r.start, r.end)))
	}
	if g.chance(0.3) {
		return append(append(out, rels...), node)
	}
	return append(append(out, node), rels...)
}

// base generates the initial tiers (ids unique across tiers).
func (g *pgen) base() pmState {
	s := pmState{}
	for _, t := range g.tiers {
		if g.chance(0.9) {
			s.tier(t)
		}
	}
	names := s.names()
	if len(names) == 0 {
		return s
	}
	for i := g.r.IntN(26); i > 0; i-- {
		id, tier := g.newNodeID(), pgPick(g.r, names)
		s.tier(tier)[pmKey{graph.KindNode, id}] = g.nodeRec(id)
		g.sawNode(id, tier)
	}
	for i := g.r.IntN(31); i > 0; i-- {
		id, tier := g.newRelID(), pgPick(g.r, names)
		st, en := g.anyNode(), g.anyNode()
		s.tier(tier)[pmKey{graph.KindRelationship, id}] = g.relRec(id, st, en)
		g.sawRel(id, &pgRel{tier, st, en})
	}
	return s
}

func (g *pgen) txID() pmTx {
	switch g.r.IntN(6) {
	case 0, 1:
		return pmTx{set: true, isInt: true, v: strconv.Itoa(g.r.IntN(6))}
	case 2:
		return pmTx{set: true, isInt: true, v: pgPick(g.r, []string{"-3", "123456789012345678901234567890"})}
	case 3, 4:
		return pmTx{set: true, v: strconv.Itoa(g.r.IntN(6))}
	}
	return pmTx{set: true, v: pgPick(g.r, []string{"t1", "t2", "", "é"})}
}

var pgBase = time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)

// pgTS formats t (already truncated to digits fractional digits) in a zone
// offset by min minutes.
func pgTS(t time.Time, min, digits int, r *rand.Rand) string {
	lt := t.In(time.FixedZone("", min*60))
	s := lt.Format("2006-01-02T15:04:05")
	if r != nil && r.IntN(20) == 0 {
		s = strings.Replace(s, "T", "t", 1)
	}
	if digits > 0 {
		s += "." + fmt.Sprintf("%09d", lt.Nanosecond())[:digits]
	}
	if min == 0 && (r == nil || r.IntN(3) != 0) {
		if r != nil && r.IntN(10) == 0 {
			return s + "z"
		}
		return s + "Z"
	}
	sign := '+'
	if min < 0 {
		sign, min = '-', -min
	}
	return fmt.Sprintf("%s%c%02d:%02d", s, sign, min/60, min%60)
}

// log generates about n records in transactions, then numbers and stamps
// them.
func (g *pgen) log(n int) []*pmEntry {
	var log []*pmEntry
	for len(log) < n {
		var grp []*pmEntry
		style := g.r.IntN(100)
		switch {
		case style < 35: // a lone record, no tx
			grp = g.op(false)
			if len(grp) == 1 {
				log = append(log, grp...)
				continue
			}
		case style < 50: // one record with tx and tx_end
			grp = g.op(false)
		default: // several
			for i := 1 + g.r.IntN(5); i > 0; i-- {
				grp = append(grp, g.op(true)...)
			}
		}
		tx := g.txID()
		for _, e := range grp {
			e.tx = tx
			if g.chance(0.1) {
				e.txEnd = 2 // explicit false
			}
		}
		if style < 85 || len(log)+len(grp) >= n {
			grp[len(grp)-1].txEnd = 1
		} // else closed by whatever follows (or merged with it if it has the same tx)
		log = append(log, grp...)
	}
	// An open trailing transaction.
	if len(log) > 0 && g.chance(0.35) {
		tx := g.txID()
		for i := g.r.IntN(3); i >= 0; i-- {
			for _, e := range g.op(true) {
				e.tx = tx
				log = append(log, e)
			}
		}
	}
	// Lsns.
	lsn := uint64(1)
	if g.chance(0.5) {
		lsn = 1 + uint64(g.r.IntN(1000))
	}
	for i, e := range log {
		if i == 0 {
			e.lsn = lsn
			if lsn > 1 && g.chance(0.4) {
				e.hasPrev, e.prev = true, uint64(g.r.IntN(int(lsn)))
			}
			continue
		}
		prev := log[i-1].lsn
		switch k := g.r.IntN(10); {
		case k < 7:
			e.lsn = prev + 1
		case k < 8:
			e.lsn, e.hasPrev, e.prev = prev+1, true, prev
		default:
			e.lsn, e.hasPrev, e.prev = prev+2+uint64(g.r.IntN(50)), true, prev
		}
	}
	// Timestamps.
	clock := pgBase.Add(time.Duration(g.r.IntN(1000)) * time.Hour)
	for _, e := range log {
		switch k := g.r.IntN(20); {
		case k < 3: // the same instant
		case k < 5: // a ts back in time, clock unchanged
			e.ts = clock.Add(-time.Duration(1+g.r.IntN(5000)) * time.Millisecond)
		case k < 6: // the clock steps back
			clock = clock.Add(-time.Duration(1+g.r.IntN(5000)) * time.Millisecond)
		default:
			clock = clock.Add(time.Duration(g.r.IntN(3000))*time.Millisecond + time.Duration(g.r.IntN(1000)))
		}
		if e.ts.IsZero() {
			e.ts = clock
		}
		digits := pgPick(g.r, []int{0, 3, 3, 6, 9, 9, 1})
		e.ts = e.ts.Truncate(time.Duration(pow10(9 - digits)))
		e.tsText = pgTS(e.ts, pgPick(g.r, []int{0, 0, 0, 60, -300, 330, 840, -720}), digits, g.r)
	}
	return log
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}
