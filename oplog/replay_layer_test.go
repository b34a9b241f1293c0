package oplog

// Replay's layer mode (ReplayOptions.Layers): for random states S and random
// logs, graph.Apply(S[tier], [layer[tier]]) must be, byte for byte, the state
// Replay merges for that tier; also over two successive layers (the log
// replayed in two batches) and over a base that has older Diff layers.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/graph"
)

// ---------------------------------------------------------------- states

// rlState is tier -> records in canonical order (one per kind and id).
type rlState map[string][]*graph.Record

func (s rlState) names() []string {
	var n []string
	for k := range s {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

func (s rlState) iterators() map[string]graph.Iterator {
	m := map[string]graph.Iterator{}
	for n, recs := range s {
		m[n] = graph.NewSliceIterator(recs)
	}
	return m
}

// rlParse reads (valid) record lines, one a line.
func rlParse(lines ...string) []*graph.Record {
	rd := graph.NewReader(strings.NewReader(strings.Join(lines, "\n")), "")
	var out []*graph.Record
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			panic(fmt.Sprintf("line %d: %v", rd.Line(), err))
		}
		rec.Line = 0
		out = append(out, rec)
	}
}

// rlCanonical sorts recs and keeps the last record of each key.
func rlCanonical(recs []*graph.Record) []*graph.Record {
	s := slices.Clone(recs)
	slices.SortStableFunc(s, graph.Compare)
	var out []*graph.Record
	for _, r := range s {
		if n := len(out); n > 0 && graph.Compare(out[n-1], r) == 0 {
			out[n-1] = r
			continue
		}
		out = append(out, r)
	}
	return out
}

func rlLines(t testing.TB, it graph.Iterator) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := graph.WriteLines(&b, it); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ---------------------------------------------------------------- generator

type rlRel struct{ tier, start, end string }

// rlGen makes random states and logs. It tracks roughly where nodes and
// relationships are (ignoring detach) so that most deletes and updates hit
// something.
type rlGen struct {
	r        *rand.Rand
	tiers    []string
	nodes    map[string]string // node id -> tier
	dead     []string          // deleted node ids
	rels     map[string]rlRel
	nNode    int
	nRel     int
	lsn      uint64
	ts       time.Time
	props    int
	txSerial int
}

func newRLGen(seed uint64) *rlGen {
	return &rlGen{r: rand.New(rand.NewPCG(seed, 11)), tiers: []string{"fast", "warm", "cold"},
		nodes: map[string]string{}, rels: map[string]rlRel{}, ts: time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)}
}

// id spells the n-th id so that byte order differs from numeric order.
func (g *rlGen) id(prefix string, n int) string {
	switch n % 4 {
	case 1:
		return prefix + "é" + strconv.Itoa(n)
	case 2:
		return prefix + " " + strconv.Itoa(n)
	case 3:
		return strconv.Itoa(n) + prefix
	}
	return prefix + strconv.Itoa(n)
}

func (g *rlGen) newNode() string { g.nNode++; return g.id("n", g.nNode) }
func (g *rlGen) newRel() string  { g.nRel++; return g.id("r", g.nRel) }

func rlJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (g *rlGen) nodeLine(id string) string {
	g.props++
	labels := [...]string{``, `"labels":[],`, `"labels":["Person"],`, `"labels":["Post","Tag"],`}[g.r.IntN(4)]
	return `{"type":"node","id":` + rlJSON(id) + `,` + labels + `"properties":{"v":` + strconv.Itoa(g.props) + `}}`
}

func (g *rlGen) relLine(id, start, end string) string {
	g.props++
	return `{"type":"relationship","id":` + rlJSON(id) + `,"label":"` + [...]string{"KNOWS", "LIKES"}[g.r.IntN(2)] +
		`","start":{"id":` + rlJSON(start) + `},"end":{"id":` + rlJSON(end) + `},"properties":{"w":` + strconv.Itoa(g.props) + `}}`
}

func (g *rlGen) tier() string { return g.tiers[g.r.IntN(len(g.tiers))] }

// anyNode: a live node mostly, else a deleted one or a dangling id.
func (g *rlGen) anyNode() string {
	switch k := g.r.IntN(10); {
	case k < 7 && len(g.nodes) > 0:
		return g.liveNode()
	case k < 9 && len(g.dead) > 0:
		return g.dead[g.r.IntN(len(g.dead))]
	}
	return g.id("x", g.r.IntN(5))
}

func rlSortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for id := range m {
		k = append(k, id)
	}
	slices.Sort(k)
	return k
}

func (g *rlGen) liveNode() string {
	k := rlSortedKeys(g.nodes)
	return k[g.r.IntN(len(k))]
}

func (g *rlGen) liveRel() string {
	k := rlSortedKeys(g.rels)
	return k[g.r.IntN(len(k))]
}

// incident returns the relationships at node id, sorted.
func (g *rlGen) incident(id string) []string {
	var out []string
	for _, rid := range rlSortedKeys(g.rels) {
		if r := g.rels[rid]; r.start == id || r.end == id {
			out = append(out, rid)
		}
	}
	return out
}

// base returns a random state and records it as known.
func (g *rlGen) base() rlState {
	s := rlState{}
	lines := map[string][]string{}
	for _, tr := range g.tiers {
		if g.r.IntN(6) > 0 { // sometimes a tier only the log names
			s[tr] = nil
		}
	}
	var have []string
	for n := range s {
		have = append(have, n)
	}
	slices.Sort(have)
	if len(have) == 0 {
		return s
	}
	for range g.r.IntN(25) {
		id := g.newNode()
		tr := have[g.r.IntN(len(have))]
		g.nodes[id] = tr
		lines[tr] = append(lines[tr], g.nodeLine(id))
	}
	for range g.r.IntN(35) {
		id := g.newRel()
		tr := have[g.r.IntN(len(have))]
		st, en := g.anyNode(), g.anyNode()
		g.rels[id] = rlRel{tr, st, en}
		lines[tr] = append(lines[tr], g.relLine(id, st, en))
	}
	for tr, l := range lines {
		s[tr] = rlCanonical(rlParse(l...))
	}
	return s
}

// mutate returns another state of the same tiers: some records changed,
// deleted, added; and records it as known.
func (g *rlGen) mutate(s rlState) rlState {
	out := rlState{}
	for _, tr := range s.names() {
		var recs []*graph.Record
		var lines []string
		for _, rec := range s[tr] {
			switch g.r.IntN(6) {
			case 0:
				if rec.Kind == graph.KindNode {
					delete(g.nodes, rec.ID)
					g.dead = append(g.dead, rec.ID)
				} else {
					delete(g.rels, rec.ID)
				}
			case 1:
				if rec.Kind == graph.KindNode {
					lines = append(lines, g.nodeLine(rec.ID))
				} else {
					st, en := g.anyNode(), g.anyNode()
					g.rels[rec.ID] = rlRel{tr, st, en}
					lines = append(lines, g.relLine(rec.ID, st, en))
				}
			default:
				recs = append(recs, rec)
			}
		}
		for range g.r.IntN(4) {
			id := g.newNode()
			g.nodes[id] = tr
			lines = append(lines, g.nodeLine(id))
		}
		out[tr] = rlCanonical(append(recs, rlParse(lines...)...))
	}
	return out
}

// rlEntry is one log record before it gets its lsn, ts and tx.
type rlEntry struct {
	tier string
	up   string // an upsert's record line; "" for a delete
	kind string
	id   string
}

func (g *rlGen) upNode(tr, id string) rlEntry {
	if i := slices.Index(g.dead, id); i >= 0 {
		g.dead = slices.Delete(g.dead, i, i+1)
	}
	g.nodes[id] = tr
	return rlEntry{tier: tr, up: g.nodeLine(id)}
}

func (g *rlGen) upRel(tr, id, st, en string) rlEntry {
	g.rels[id] = rlRel{tr, st, en}
	return rlEntry{tier: tr, up: g.relLine(id, st, en)}
}

func (g *rlGen) delNode(tr, id string) rlEntry {
	if g.nodes[id] == tr {
		delete(g.nodes, id)
		g.dead = append(g.dead, id)
	}
	for _, rid := range g.incident(id) {
		delete(g.rels, rid)
	}
	return rlEntry{tier: tr, kind: "node", id: id}
}

func (g *rlGen) delRel(tr, id string) rlEntry {
	if g.rels[id].tier == tr {
		delete(g.rels, id)
	}
	return rlEntry{tier: tr, kind: "relationship", id: id}
}

// ops returns one random operation: a lone record or a transaction.
func (g *rlGen) ops() []rlEntry {
	switch k := g.r.IntN(20); {
	case k < 4: // a new node, or a deleted one created again
		if len(g.dead) > 0 && g.r.IntN(3) == 0 {
			return []rlEntry{g.upNode(g.tier(), g.dead[g.r.IntN(len(g.dead))])}
		}
		return []rlEntry{g.upNode(g.tier(), g.newNode())}
	case k < 6 && len(g.nodes) > 0: // an update (sometimes into a second tier)
		id := g.liveNode()
		tr := g.nodes[id]
		if g.r.IntN(8) == 0 {
			tr = g.tier()
		}
		return []rlEntry{g.upNode(tr, id)}
	case k < 10: // a new relationship or an update (endpoints too)
		id := g.newRel()
		tr := g.tier()
		if len(g.rels) > 0 && g.r.IntN(2) == 0 {
			id = g.liveRel()
			tr = g.rels[id].tier
		}
		return []rlEntry{g.upRel(tr, id, g.anyNode(), g.anyNode())}
	case k < 13 && len(g.nodes) > 0: // a node delete, sometimes from the wrong tier
		id := g.liveNode()
		tr := g.nodes[id]
		if g.r.IntN(6) == 0 {
			tr = g.tier()
		}
		return []rlEntry{g.delNode(tr, id)}
	case k < 14: // a delete of an absent node
		return []rlEntry{g.delNode(g.tier(), g.id("x", g.r.IntN(5)))}
	case k < 16 && len(g.rels) > 0: // a relationship delete
		id := g.liveRel()
		tr := g.rels[id].tier
		if g.r.IntN(6) == 0 {
			tr = g.tier()
		}
		return []rlEntry{g.delRel(tr, id)}
	case k < 17:
		return []rlEntry{g.delRel(g.tier(), g.id("r", g.r.IntN(g.nRel+1)))}
	case k < 19 && len(g.nodes) > 0: // a tier move
		id := g.liveNode()
		from := g.nodes[id]
		to := g.tier()
		var tx []rlEntry
		if g.r.IntN(3) == 0 { // upserted before the delete: detached by it
			tx = append(tx, g.upRel(g.tier(), g.newRel(), id, g.anyNode()))
		}
		rels := g.incident(id)
		tx = append(tx, g.delNode(from, id), g.upNode(to, id))
		for _, rid := range rels {
			if g.r.IntN(3) > 0 {
				// Re-upsert a relationship the delete detached, in any
				// tier, with the moved node as its start.
				tx = append(tx, g.upRel(g.tier(), rid, id, g.anyNode()))
			}
		}
		return tx
	default: // a relationship re-upserted after its node's delete
		if len(g.nodes) == 0 {
			return nil
		}
		id := g.liveNode()
		rid := g.newRel()
		return []rlEntry{g.upRel(g.tier(), rid, id, g.anyNode()), g.delNode(g.nodes[id], id), g.upRel(g.tier(), rid, g.anyNode(), id)}
	}
}

// log returns n operations as log text; some are transactions (moves
// always), and with open set the last transaction has no tx_end. ends are
// the lsns that end a complete transaction.
func (g *rlGen) log(n int, open bool) (text string, ends []uint64) {
	var b strings.Builder
	var groups [][]rlEntry
	for range n {
		if ops := g.ops(); len(ops) > 0 {
			groups = append(groups, ops)
		}
	}
	for i, ops := range groups {
		g.txSerial++
		inTx := len(ops) > 1 || g.r.IntN(3) == 0
		for j, e := range ops {
			g.lsn++
			if g.r.IntN(3) > 0 {
				g.ts = g.ts.Add(time.Duration(g.r.IntN(2000)) * time.Millisecond)
			}
			b.WriteString(`{"lsn":` + strconv.FormatUint(g.lsn, 10) + `,"ts":"` + g.ts.Format("2006-01-02T15:04:05.000Z") + `"`)
			if inTx {
				b.WriteString(`,"tx":"t` + strconv.Itoa(g.txSerial) + `"`)
				if j == len(ops)-1 && !(open && i == len(groups)-1) {
					b.WriteString(`,"tx_end":true`)
				}
			}
			b.WriteString(`,"tier":` + rlJSON(e.tier))
			if e.up != "" {
				b.WriteString(`,"op":"upsert","record":` + e.up + "}\n")
			} else {
				b.WriteString(`,"op":"delete","kind":"` + e.kind + `","id":` + rlJSON(e.id) + "}\n")
			}
		}
		if !(open && i == len(groups)-1 && inTx) {
			ends = append(ends, g.lsn)
		}
	}
	return b.String(), ends
}

// ---------------------------------------------------------------- replays

// rlLog is a log read once (parsing dominates these tests' time otherwise)
// and replayed many times.
type rlLog struct {
	text string
	recs []*Record
}

func rlParseLog(t *testing.T, text string) *rlLog {
	t.Helper()
	l := &rlLog{text: text}
	rd := NewReader(strings.NewReader(text))
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return l
		}
		if err != nil {
			t.Fatal(err)
		}
		l.recs = append(l.recs, r)
	}
}

type rlLogIter struct{ recs []*Record }

func (it *rlLogIter) Next() (*Record, error) {
	if len(it.recs) == 0 {
		return nil, io.EOF
	}
	r := it.recs[0]
	it.recs = it.recs[1:]
	return r, nil
}

func (l *rlLog) iter() Iterator { return &rlLogIter{recs: l.recs} }

// rlReplayStates returns Replay's merged states as canonical text.
func rlReplayStates(t *testing.T, s rlState, log *rlLog, opts ReplayOptions) (map[string]string, *ReplayResult) {
	t.Helper()
	res, err := Replay(s.iterators(), log.iter(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	out := map[string]string{}
	for _, n := range res.TierNames() {
		out[n] = rlLines(t, res.Tiers[n])
	}
	return out, res
}

// rlReplayLayers returns the layers as the text a layer file holds, and
// checks each is a canonical layer stream: detach lines first, the same in
// every layer, then upserts and tombstones in strict canonical order.
func rlReplayLayers(t *testing.T, log *rlLog, opts ReplayOptions) (map[string]string, *ReplayResult) {
	t.Helper()
	opts.Layers = true
	res, err := Replay(nil, log.iter(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if res.Tiers != nil {
		t.Fatal("Tiers set in layer mode")
	}
	out := map[string]string{}
	detach := ""
	for i, n := range res.LayerNames() {
		text := rlLines(t, res.Layers[n])
		out[n] = text
		recs, err := rlDrain(graph.NewLineIterator(strings.NewReader(text), n))
		if err != nil {
			t.Fatalf("layer %s does not read back: %v\n%s", n, err, text)
		}
		var d strings.Builder
		for j, r := range recs {
			if j > 0 && graph.Compare(recs[j-1], r) >= 0 {
				t.Fatalf("layer %s is not in canonical order at line %d:\n%s", n, j+1, text)
			}
			if r.Kind == graph.KindDetach {
				d.Write(r.Canonical)
			}
		}
		if i > 0 && d.String() != detach {
			t.Fatalf("layers differ in their detach lines:\n%s\n%s", detach, d.String())
		}
		detach = d.String()
	}
	return out, res
}

func rlDrain(it graph.Iterator) ([]*graph.Record, error) {
	defer it.Close()
	var out []*graph.Record
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}

// rlApply is graph.Apply(base, layers) with the layers read from text
// through NewLineIterator, as canonical text.
func rlApply(t *testing.T, base []*graph.Record, layers ...string) string {
	t.Helper()
	var its []graph.Iterator
	for _, l := range layers {
		its = append(its, graph.NewLineIterator(strings.NewReader(l), "layer"))
	}
	it := graph.Apply(graph.NewSliceIterator(base), its)
	defer it.Close()
	return rlLines(t, it)
}

func rlSameResult(t *testing.T, a, b *ReplayResult) {
	t.Helper()
	if a.Transactions != b.Transactions || a.Applied != b.Applied || a.Skipped != b.Skipped ||
		a.LastLSN != b.LastLSN || a.LastTS != b.LastTS || a.Clamped != b.Clamped ||
		fmt.Sprint(a.Open) != fmt.Sprint(b.Open) || fmt.Sprint(a.Straddle) != fmt.Sprint(b.Straddle) {
		t.Fatalf("results differ:\n%+v\n%+v", a, b)
	}
}

func rlUnion(lists ...[]string) []string {
	var all []string
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func rlKeys(m map[string]string) []string { return rlSortedKeys(m) }

func rlFirst[A, B any](a A, _ B) A { return a }

// ---------------------------------------------------------------- tests

func rlSeeds() int {
	if os.Getenv(thoroughEnv) == "1" {
		return 3000
	}
	return 300
}

func rlMem(seed uint64) int64 {
	if seed%2 == 0 {
		return 4 << 10 // spills
	}
	return 1 << 20
}

// TestReplayLayersProperty: Apply(S[tier], [layer]) == Replay(S, log)[tier].
func TestReplayLayersProperty(t *testing.T) {
	tmp := t.TempDir()
	for seed := range uint64(rlSeeds()) {
		g := newRLGen(seed)
		s := g.base()
		text, ends := g.log(5+g.r.IntN(40), g.r.IntN(5) == 0)
		log := rlParseLog(t, text)
		opts := ReplayOptions{MemLimit: rlMem(seed), TmpDir: tmp}
		if len(ends) > 0 && g.r.IntN(4) == 0 { // a cut inside the log
			opts.LSN, opts.HasLSN = uint64(1+g.r.IntN(int(ends[len(ends)-1]))), true
		}
		want, wres := rlReplayStates(t, s, log, opts)
		lo := opts
		lo.LayerTiers = s.names()
		layers, lres := rlReplayLayers(t, log, lo)
		rlSameResult(t, wres, lres)
		if !slices.Equal(rlKeys(want), rlKeys(layers)) {
			t.Fatalf("seed %d: tiers %v, layers %v", seed, rlKeys(want), rlKeys(layers))
		}
		for _, n := range rlKeys(want) {
			if got := rlApply(t, s[n], layers[n]); got != want[n] {
				t.Fatalf("seed %d: tier %s differs\nbase:\n%slog:\n%slayer:\n%sgot:\n%swant:\n%s",
					seed, n, rlLines(t, graph.NewSliceIterator(s[n])), log.text, layers[n], got, want[n])
			}
		}
	}
}

// TestReplayLayersTwoBatches: the log replayed as two layers, the first up
// to a cut (extended to its transaction's end), the second after it, over S
// equals one replay of the whole log.
func TestReplayLayersTwoBatches(t *testing.T) {
	tmp := t.TempDir()
	for seed := range uint64(rlSeeds()) {
		g := newRLGen(seed + 1<<32)
		s := g.base()
		text, ends := g.log(5+g.r.IntN(40), g.r.IntN(5) == 0)
		log := rlParseLog(t, text)
		if len(ends) == 0 {
			continue
		}
		mem := rlMem(seed)
		want, _ := rlReplayStates(t, s, log, ReplayOptions{MemLimit: mem, TmpDir: tmp})
		k := uint64(1 + g.r.IntN(int(ends[len(ends)-1])))
		l1, r1 := rlReplayLayers(t, log, ReplayOptions{LSN: k, HasLSN: true, Extend: true, LayerTiers: s.names(), MemLimit: mem, TmpDir: tmp})
		l2, _ := rlReplayLayers(t, log, ReplayOptions{AfterLSN: r1.LastLSN, HasAfter: true, LayerTiers: rlUnion(s.names(), rlKeys(l1)), MemLimit: mem, TmpDir: tmp})
		if !slices.Equal(rlKeys(want), rlKeys(l2)) {
			t.Fatalf("seed %d: tiers %v, layers %v", seed, rlKeys(want), rlKeys(l2))
		}
		for _, n := range rlKeys(want) {
			if got := rlApply(t, s[n], l1[n], l2[n]); got != want[n] {
				t.Fatalf("seed %d: tier %s differs (cut %d)\nbase:\n%slog:\n%slayer 1:\n%slayer 2:\n%sgot:\n%swant:\n%s",
					seed, n, r1.LastLSN, rlLines(t, graph.NewSliceIterator(s[n])), log.text, l1[n], l2[n], got, want[n])
			}
		}
	}
}

// TestReplayLayersOverDiffLayers: a synthesized layer over a base that
// has an older Diff layer: Apply(S0, [Diff(S0, S), layer]) == Replay(S, log).
func TestReplayLayersOverDiffLayers(t *testing.T) {
	tmp := t.TempDir()
	for seed := range uint64(rlSeeds() / 2) {
		g := newRLGen(seed + 2<<32)
		s0 := g.base()
		s := g.mutate(s0)
		diffs := map[string]string{}
		for _, n := range s.names() {
			var b bytes.Buffer
			err := graph.Diff(graph.NewSliceIterator(s0[n]), graph.NewSliceIterator(s[n]), func(rec *graph.Record, _ bool) error {
				b.Write(rec.Canonical)
				return b.WriteByte('\n')
			})
			if err != nil {
				t.Fatal(err)
			}
			diffs[n] = b.String()
		}
		log := rlParseLog(t, rlFirst(g.log(5+g.r.IntN(40), false)))
		opts := ReplayOptions{MemLimit: rlMem(seed), TmpDir: tmp}
		want, _ := rlReplayStates(t, s, log, opts)
		opts.LayerTiers = s.names()
		layers, _ := rlReplayLayers(t, log, opts)
		for _, n := range rlKeys(want) {
			if got := rlApply(t, s0[n], diffs[n], layers[n]); got != want[n] {
				t.Fatalf("seed %d: tier %s differs\nbase:\n%sdiff:\n%slog:\n%slayer:\n%sgot:\n%swant:\n%s",
					seed, n, rlLines(t, graph.NewSliceIterator(s0[n])), diffs[n], log.text, layers[n], got, want[n])
			}
		}
	}
}

// TestReplayLayersExample spells out the layers of a small log, read back
// as layer files through NewLineIterator and applied.
func TestReplayLayersExample(t *testing.T) {
	node := func(id string) string { return `{"id":"` + id + `","type":"node"}` }
	rel := func(id, s, e string) string {
		return `{"end":{"id":"` + e + `"},"id":"` + id + `","label":"R","start":{"id":"` + s + `"},"type":"relationship"}`
	}
	state := func(lines ...string) []*graph.Record { return rlParse(lines...) }
	s := rlState{
		"cold":    state(node("a"), node("b"), rel("r1", "a", "b")),
		"warm":    state(node("c"), rel("r2", "c", "a"), rel("r3", "c", "c")),
		"fast":    state(rel("r4", "b", "a")),
		"archive": nil,
	}
	ts := `"ts":"2026-01-01T00:00:00Z"`
	log := rlParseLog(t, strings.Join([]string{
		`{"lsn":1,` + ts + `,"tier":"warm","op":"upsert","record":` + rel("r5", "c", "a") + `}`, // detached by lsn 2
		`{"lsn":2,` + ts + `,"tier":"cold","op":"delete","kind":"node","id":"a"}`,
		`{"lsn":3,` + ts + `,"tier":"fast","op":"upsert","record":` + node("a") + `}`,
		`{"lsn":4,` + ts + `,"tier":"fast","op":"upsert","record":` + rel("r6", "a", "c") + `}`,
		`{"lsn":5,` + ts + `,"tier":"warm","op":"delete","kind":"relationship","id":"r3"}`,
		`{"lsn":6,` + ts + `,"tier":"cold","op":"upsert","record":` + rel("r1", "a", "b") + `}`,
		`{"lsn":7,` + ts + `,"tier":"fast","op":"delete","kind":"node","id":"zz"}`,
	}, "\n")+"\n")
	layers, res := rlReplayLayers(t, log, ReplayOptions{LayerTiers: []string{"archive", "cold", "fast", "warm"}})
	if res.Applied != 7 || res.LastLSN != 7 {
		t.Errorf("result %+v", res)
	}
	d := `{"id":"a","type":"detach"}` + "\n" + `{"id":"zz","type":"detach"}` + "\n"
	wantLayers := map[string]string{
		"archive": d,
		"cold":    d + `{"id":"a","tombstone":true,"type":"node"}` + "\n" + rel("r1", "a", "b") + "\n",
		"warm":    d + `{"id":"r3","tombstone":true,"type":"relationship"}` + "\n" + `{"id":"r5","tombstone":true,"type":"relationship"}` + "\n",
		"fast":    d + node("a") + "\n" + `{"id":"zz","tombstone":true,"type":"node"}` + "\n" + rel("r6", "a", "c") + "\n",
	}
	for n, w := range wantLayers {
		if layers[n] != w {
			t.Errorf("layer %s:\n%swant:\n%s", n, layers[n], w)
		}
	}
	if len(layers) != len(wantLayers) {
		t.Errorf("layers %v", rlKeys(layers))
	}
	wantStates := map[string]string{
		"archive": "",
		"cold":    node("b") + "\n" + rel("r1", "a", "b") + "\n",
		"warm":    node("c") + "\n",
		"fast":    node("a") + "\n" + rel("r6", "a", "c") + "\n",
	}
	merged, _ := rlReplayStates(t, s, log, ReplayOptions{})
	for n, w := range wantStates {
		if got := rlApply(t, s[n], layers[n]); got != w || merged[n] != w {
			t.Errorf("tier %s: applied\n%smerged\n%swant\n%s", n, got, merged[n], w)
		}
	}
	// A layer is not a state: Replay refuses a detach line in an input
	// tier (when the merge reaches it).
	detach := []*graph.Record{graph.NewDetach("a")}
	res, err := Replay(map[string]graph.Iterator{"t": graph.NewSliceIterator(detach)}, log.iter(), ReplayOptions{})
	if err == nil {
		_, err = rlDrain(res.Tiers["t"])
		res.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "tier t: detach line for node a in a state") {
		t.Errorf("detach line in a state: %v", err)
	}
	// A bad layer tier name.
	if _, err := Replay(nil, log.iter(), ReplayOptions{Layers: true, LayerTiers: []string{"a/b"}}); err == nil {
		t.Error("bad layer tier name accepted")
	}
}
