// Command genoplog writes a deterministic mutation log (SPEC section 5) for
// a graph export written by tools/gengraph, for the benchmarks (make bench).
//
//	go run ./tools/genoplog -graph DIR -records 1000000 -out oplog.jsonl
//	go run ./tools/genoplog -graph DIR -changed DIR2 -out oplog.jsonl
//
// With -records N it writes a mixed workload of exactly N records against
// the graph in DIR (fast.jsonl, warm.jsonl, cold.jsonl as gengraph writes
// them): updates of existing nodes and relationships (whole-record upserts
// with new properties), new nodes with new relationships, new relationships
// between existing nodes, relationship deletes, node deletes (detach) and
// tier moves (delete the node, upsert it in another tier, upsert its
// outgoing relationships again), in transactions of 1 to -tx-max records.
// It keeps track of what each record did, so that no record names a node
// that is gone: every state the log passes through is a valid graph.
//
// With -changed DIR2 (the same graph written with gengraph -change F) it
// writes one upsert for every record that differs between the two exports,
// in a shuffled order, so that replaying the log over DIR gives exactly
// DIR2.
//
// Lsns run from -first-lsn without gaps, ts from -start by -step per
// record, every transaction's last record carries "tx_end": true (the log
// never ends inside one). The same flags always give the same bytes. With
// -out FILE, a summary (records, transactions, counts per operation) is
// printed on stdout as KEY=VALUE lines.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	dir := flag.String("graph", "", "the gengraph export the log starts from (required)")
	changed := flag.String("changed", "", "a changed version of the same export (gengraph -change): write the upserts that turn -graph into it")
	records := flag.Int("records", 0, "write a mixed workload of this many records")
	out := flag.String("out", "", "output file (default: stdout)")
	seed := flag.Uint64("seed", 1, "workload seed")
	firstLSN := flag.Uint64("first-lsn", 1, "lsn of the first record")
	start := flag.String("start", "2026-11-27T00:00:00Z", "ts of the first record (RFC 3339)")
	step := flag.Duration("step", time.Millisecond, "ts increment per record")
	txMax := flag.Int("tx-max", 6, "records per transaction: 1 to this many (new nodes and tier moves take one transaction of their own)")
	flag.Parse()
	if *dir == "" || (*changed == "") == (*records <= 0) {
		fmt.Fprintln(os.Stderr, "genoplog: -graph DIR and one of -changed DIR2 or -records N are required")
		flag.Usage()
		os.Exit(2)
	}
	t0, err := time.Parse(time.RFC3339Nano, *start)
	if err != nil {
		die(fmt.Errorf("-start: %w", err))
	}
	if *txMax < 1 {
		*txMax = 1
	}
	var w io.Writer = os.Stdout
	var f *os.File
	if *out != "" {
		if f, err = os.Create(*out); err != nil {
			die(err)
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	lw := &logWriter{w: bw, lsn: *firstLSN, t0: t0.UTC(), step: *step, rng: rand.New(rand.NewPCG(*seed, 0x6c6f67)), txMax: *txMax}
	if *changed != "" {
		err = diffLog(lw, *dir, *changed)
	} else {
		var g *graphState
		if g, err = loadGraph(*dir); err == nil {
			err = mixedLog(lw, g, *records)
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		die(err)
	}
	if *out != "" {
		lw.stats.print(os.Stdout)
	}
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "genoplog:", err)
	os.Exit(1)
}

// --- the log -----------------------------------------------------------------

type stats struct {
	records, txs                                     int
	nodeUpdates, relUpdates, nodeInserts, relInserts int
	relDeletes, nodeDeletes, moves, moveRecords      int
	bytes                                            int64
}

func (s *stats) print(w io.Writer) {
	fmt.Fprintf(w, "records=%d\ntransactions=%d\nbytes=%d\nnode_updates=%d\nrel_updates=%d\nnode_inserts=%d\nrel_inserts=%d\nrel_deletes=%d\nnode_deletes=%d\ntier_moves=%d\ntier_move_records=%d\n",
		s.records, s.txs, s.bytes, s.nodeUpdates, s.relUpdates, s.nodeInserts, s.relInserts, s.relDeletes, s.nodeDeletes, s.moves, s.moveRecords)
}

// logWriter numbers and timestamps records and groups them into
// transactions.
type logWriter struct {
	w     *bufio.Writer
	lsn   uint64
	t0    time.Time
	step  time.Duration
	n     int64
	rng   *rand.Rand
	txMax int
	stats stats
	buf   []byte
}

// op is one record's body after the envelope: tier, op and what follows.
type op struct {
	tier   string
	delete bool
	kind   string // delete: node or relationship
	id     string // delete
	record []byte // upsert: the graph record (one JSON object)
}

// tx writes ops as one transaction.
func (lw *logWriter) tx(ops []op) error {
	lw.stats.txs++
	txid := "t" + strconv.Itoa(lw.stats.txs)
	for k, o := range ops {
		b := lw.buf[:0]
		b = append(b, `{"lsn":`...)
		b = strconv.AppendUint(b, lw.lsn, 10)
		b = append(b, `,"ts":"`...)
		b = lw.t0.Add(time.Duration(lw.n)*lw.step).AppendFormat(b, "2006-01-02T15:04:05.000000Z")
		b = append(b, `","tx":"`...)
		b = append(b, txid...)
		b = append(b, '"')
		if k == len(ops)-1 {
			b = append(b, `,"tx_end":true`...)
		}
		b = append(b, `,"tier":"`...)
		b = append(b, o.tier...)
		if o.delete {
			b = append(b, `","op":"delete","kind":"`...)
			b = append(b, o.kind...)
			b = append(b, `","id":"`...)
			b = append(b, o.id...)
			b = append(b, `"}`...)
		} else {
			b = append(b, `","op":"upsert","record":`...)
			b = append(b, o.record...)
			b = append(b, '}')
		}
		b = append(b, '\n')
		if _, err := lw.w.Write(b); err != nil {
			return err
		}
		lw.buf = b
		lw.lsn++
		lw.n++
		lw.stats.records++
		lw.stats.bytes += int64(len(b))
	}
	return nil
}

// --- -changed: the upserts between two exports ----------------------------------

func tierFiles(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range m {
		if n := strings.TrimSuffix(filepath.Base(p), ".jsonl"); n != "oplog" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no <tier>.jsonl files", dir)
	}
	return names, nil
}

func diffLog(lw *logWriter, a, b string) error {
	tiers, err := tierFiles(a)
	if err != nil {
		return err
	}
	var ops []op
	for _, t := range tiers {
		fa, err := os.Open(filepath.Join(a, t+".jsonl"))
		if err != nil {
			return err
		}
		fb, err := os.Open(filepath.Join(b, t+".jsonl"))
		if err != nil {
			fa.Close()
			return err
		}
		ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
		for line := 1; ; line++ {
			la, ea := ra.ReadSlice('\n')
			lb, eb := rb.ReadSlice('\n')
			if errors.Is(ea, io.EOF) && errors.Is(eb, io.EOF) && len(la) == 0 && len(lb) == 0 {
				break
			}
			if ea != nil && !errors.Is(ea, io.EOF) || eb != nil && !errors.Is(eb, io.EOF) {
				fa.Close()
				fb.Close()
				return fmt.Errorf("%s.jsonl line %d: %v", t, line, errors.Join(ea, eb))
			}
			la, lb = bytes.TrimRight(la, "\r\n"), bytes.TrimRight(lb, "\r\n")
			if bytes.Equal(la, lb) {
				continue
			}
			if ida, idb := lineID(la), lineID(lb); ida == "" || ida != idb {
				fa.Close()
				fb.Close()
				return fmt.Errorf("%s.jsonl line %d: the exports hold different records (%q, %q): not two versions of one gengraph graph", t, line, ida, idb)
			}
			ops = append(ops, op{tier: t, record: bytes.Clone(lb)})
		}
		fa.Close()
		fb.Close()
	}
	lw.rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	for len(ops) > 0 {
		n := min(len(ops), 1+lw.rng.IntN(lw.txMax))
		for _, o := range ops[:n] {
			if bytes.HasPrefix(o.record, []byte(`{"type":"node"`)) {
				lw.stats.nodeUpdates++
			} else {
				lw.stats.relUpdates++
			}
		}
		if err := lw.tx(ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// lineID returns a gengraph line's "type" and "id" ("node n12"), "" if it has none.
func lineID(l []byte) string {
	for _, p := range []string{`{"type":"node","id":"`, `{"type":"relationship","id":"`} {
		if rest, ok := bytes.CutPrefix(l, []byte(p)); ok {
			if i := bytes.IndexByte(rest, '"'); i > 0 {
				return p[9:13] + " " + string(rest[:i])
			}
		}
	}
	return ""
}

// --- -records: a mixed workload ---------------------------------------------------

// graphState is what the workload needs of the graph, by index: node i is
// "n<i>"; relationship k is "r<start>_<j>" (gengraph's) or "e<k>" (new).
type graphState struct {
	tiers  []string
	labels [][]byte // interned "labels" arrays, as JSON
	types  []string // interned relationship types

	nTier   []uint8
	nLabels []uint8
	nInc    []uint16 // incremented when the node is deleted (detach)
	nAlive  []bool
	nOut    []int32 // first relationship of the node in gengraph's order, -1: none
	nOutN   []uint8
	newOut  map[int32][]int32 // relationships created by the log, by start node

	rStart, rEnd       []int32
	rJ                 []uint8 // gengraph's j; 255: created by the log
	rTier, rType       []uint8
	rStartInc, rEndInc []uint16 // the endpoints' nInc when it was last upserted
	rAlive             []bool
}

var (
	nodePrefix = []byte(`{"type":"node","id":"n`)
	relPrefix  = []byte(`{"type":"relationship","id":"r`)
)

func loadGraph(dir string) (*graphState, error) {
	tiers, err := tierFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(tiers) > 255 {
		return nil, errors.New("too many tiers")
	}
	g := &graphState{tiers: tiers, newOut: map[int32][]int32{}}
	labelIdx := map[string]uint8{}
	typeIdx := map[string]uint8{}
	intern := func(m map[string]uint8, s string, add func(string)) (uint8, error) {
		if i, ok := m[s]; ok {
			return i, nil
		}
		if len(m) == 255 {
			return 0, errors.New("more than 255 distinct label sets or relationship types: not a gengraph export")
		}
		m[s] = uint8(len(m))
		add(s)
		return m[s], nil
	}
	setNode := func(i int) {
		for len(g.nTier) <= i {
			g.nTier = append(g.nTier, 0)
			g.nLabels = append(g.nLabels, 0)
			g.nInc = append(g.nInc, 0)
			g.nAlive = append(g.nAlive, false)
			g.nOut = append(g.nOut, -1)
			g.nOutN = append(g.nOutN, 0)
		}
	}
	for ti, t := range tiers {
		f, err := os.Open(filepath.Join(dir, t+".jsonl"))
		if err != nil {
			return nil, err
		}
		r := bufio.NewReaderSize(f, 1<<20)
		for line := 1; ; line++ {
			l, err := r.ReadSlice('\n')
			if len(l) == 0 && errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !errors.Is(err, io.EOF) {
				f.Close()
				return nil, fmt.Errorf("%s.jsonl line %d: %w", t, line, err)
			}
			bad := func(what string) error {
				f.Close()
				return fmt.Errorf("%s.jsonl line %d: %s: not a gengraph export", t, line, what)
			}
			switch {
			case bytes.HasPrefix(l, nodePrefix):
				i, rest, ok := leadingInt(l[len(nodePrefix):])
				if !ok {
					return nil, bad("node id")
				}
				lab, ok := between(rest, `"labels":`, ']')
				if !ok {
					return nil, bad("labels")
				}
				li, err := intern(labelIdx, string(lab)+"]", func(s string) { g.labels = append(g.labels, []byte(s)) })
				if err != nil {
					return nil, err
				}
				setNode(i)
				if g.nAlive[i] {
					return nil, bad("node n" + strconv.Itoa(i) + " defined twice")
				}
				g.nTier[i], g.nLabels[i], g.nAlive[i] = uint8(ti), li, true
			case bytes.HasPrefix(l, relPrefix):
				i, rest, ok := leadingInt(l[len(relPrefix):])
				if !ok || len(rest) == 0 || rest[0] != '_' {
					return nil, bad("relationship id")
				}
				j, rest, ok := leadingInt(rest[1:])
				if !ok || j >= 255 {
					return nil, bad("relationship id")
				}
				typ, ok := between(rest, `"label":"`, '"')
				if !ok {
					return nil, bad("relationship label")
				}
				ty, err := intern(typeIdx, string(typ), func(s string) { g.types = append(g.types, s) })
				if err != nil {
					return nil, err
				}
				e := bytes.Index(rest, []byte(`"end":{"id":"n`))
				if e < 0 {
					return nil, bad("relationship end")
				}
				end, _, ok := leadingInt(rest[e+len(`"end":{"id":"n`):])
				if !ok {
					return nil, bad("relationship end")
				}
				k := int32(len(g.rStart))
				setNode(max(i, end))
				if g.nOut[i] < 0 {
					g.nOut[i] = k
				} else if int(g.nOut[i])+int(g.nOutN[i]) != int(k) {
					return nil, bad("relationships of one node not together")
				}
				g.nOutN[i]++
				g.rStart = append(g.rStart, int32(i))
				g.rEnd = append(g.rEnd, int32(end))
				g.rJ = append(g.rJ, uint8(j))
				g.rTier = append(g.rTier, uint8(ti))
				g.rType = append(g.rType, ty)
				g.rStartInc = append(g.rStartInc, 0)
				g.rEndInc = append(g.rEndInc, 0)
				g.rAlive = append(g.rAlive, true)
			case len(bytes.TrimSpace(l)) == 0:
			default:
				return nil, bad("unknown line")
			}
		}
		f.Close()
	}
	for i, ok := range g.nAlive {
		if !ok {
			return nil, fmt.Errorf("%s: node n%d is missing (or named only by a relationship): not a gengraph export", dir, i)
		}
	}
	if len(g.nAlive) == 0 || len(g.labels) == 0 {
		return nil, fmt.Errorf("%s: no nodes", dir)
	}
	if len(g.types) == 0 {
		g.types = []string{"KNOWS"}
	}
	return g, nil
}

func leadingInt(b []byte) (int, []byte, bool) {
	n, k := 0, 0
	for k < len(b) && b[k] >= '0' && b[k] <= '9' && k < 9 {
		n = n*10 + int(b[k]-'0')
		k++
	}
	return n, b[k:], k > 0
}

// between returns what follows the first key in b up to (not including) the
// first end byte after it.
func between(b []byte, key string, end byte) ([]byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, end)
	if j < 0 {
		return nil, false
	}
	return rest[:j], true
}

func (g *graphState) relID(k int32) string {
	if g.rJ[k] == 255 {
		return "e" + strconv.Itoa(int(k))
	}
	return "r" + strconv.Itoa(int(g.rStart[k])) + "_" + strconv.Itoa(int(g.rJ[k]))
}

// relLive: the relationship exists (not deleted, not detached since it was
// last upserted).
func (g *graphState) relLive(k int32) bool {
	return g.rAlive[k] && g.nAlive[g.rStart[k]] && g.nAlive[g.rEnd[k]] &&
		g.rStartInc[k] == g.nInc[g.rStart[k]] && g.rEndInc[k] == g.nInc[g.rEnd[k]]
}

var (
	names = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Ken", "Zoë", "Jürgen", "Małgorzata", "Ngọc", "李娜", "Олег", "Søren", "Amélie"}
	words = []string{"graph", "node", "edge", "backup", "tier", "snapshot", "lorem", "ipsum", "dolor", "sit", "amet", "data", "consistent", "cut", "replica", "restore", "query", "index", "cluster", "shard", "log", "replay"}
)

func (lw *logWriter) nodeRecord(g *graphState, i int32, rev uint64) []byte {
	r := lw.rng
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"node","id":"n`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","labels":`...)
	b = append(b, g.labels[g.nLabels[i]]...)
	b = append(b, `,"properties":{"name":`...)
	b = strconv.AppendQuote(b, names[r.IntN(len(names))]+" "+strconv.FormatUint(r.Uint64N(100000), 36))
	b = append(b, `,"born":`...)
	b = strconv.AppendInt(b, 1900+r.Int64N(120), 10)
	b = append(b, `,"score":`...)
	b = strconv.AppendFloat(b, float64(r.IntN(1_000_000))/997.0, 'g', -1, 64)
	b = append(b, `,"rev":`...)
	b = strconv.AppendUint(b, rev, 10)
	b = append(b, `,"bio":"`...)
	for k := 0; k < 3+r.IntN(5); k++ {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, ' ')
	}
	return append(b, `"}}`...)
}

func (lw *logWriter) relRecord(g *graphState, k int32) []byte {
	r := lw.rng
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"relationship","id":"`...)
	b = append(b, g.relID(k)...)
	b = append(b, `","label":"`...)
	b = append(b, g.types[g.rType[k]]...)
	b = append(b, `","start":{"id":"n`...)
	b = strconv.AppendInt(b, int64(g.rStart[k]), 10)
	b = append(b, `","labels":`...)
	b = append(b, g.labels[g.nLabels[g.rStart[k]]]...)
	b = append(b, `},"end":{"id":"n`...)
	b = strconv.AppendInt(b, int64(g.rEnd[k]), 10)
	b = append(b, `","labels":`...)
	b = append(b, g.labels[g.nLabels[g.rEnd[k]]]...)
	b = append(b, '}')
	if r.IntN(3) != 0 {
		b = append(b, `,"properties":{"since":`...)
		b = strconv.AppendInt(b, 1990+r.Int64N(37), 10)
		b = append(b, `,"weight":`...)
		b = strconv.AppendFloat(b, float64(r.IntN(10000))/100, 'f', -1, 64)
		b = append(b, '}')
	}
	return append(b, '}')
}

// aliveNode picks a random node that exists.
func (lw *logWriter) aliveNode(g *graphState) int32 {
	for {
		i := int32(lw.rng.IntN(len(g.nAlive)))
		if g.nAlive[i] {
			return i
		}
	}
}

// liveRel picks a random relationship that exists (-1 after many misses).
func (lw *logWriter) liveRel(g *graphState) int32 {
	for range 64 {
		k := int32(lw.rng.IntN(len(g.rStart)))
		if g.relLive(k) {
			return k
		}
	}
	return -1
}

// newRel adds a relationship from start to end, in start's tier.
func (g *graphState) newRel(start, end int32, typ uint8) int32 {
	k := int32(len(g.rStart))
	g.rStart = append(g.rStart, start)
	g.rEnd = append(g.rEnd, end)
	g.rJ = append(g.rJ, 255)
	g.rTier = append(g.rTier, g.nTier[start])
	g.rType = append(g.rType, typ)
	g.rStartInc = append(g.rStartInc, g.nInc[start])
	g.rEndInc = append(g.rEndInc, g.nInc[end])
	g.rAlive = append(g.rAlive, true)
	g.newOut[start] = append(g.newOut[start], k)
	return k
}

// outRels lists the live relationships that start at node i.
func (g *graphState) outRels(i int32) []int32 {
	var ks []int32
	if g.nOut[i] >= 0 {
		for k := g.nOut[i]; k < g.nOut[i]+int32(g.nOutN[i]); k++ {
			if g.relLive(k) {
				ks = append(ks, k)
			}
		}
	}
	for _, k := range g.newOut[i] {
		if g.relLive(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// mixedLog writes n records. A transaction is, with probability 3%, a new
// node with 1-3 new relationships to existing nodes; 2%, a tier move
// (delete the node, which detaches its relationships, upsert it in another
// tier, upsert its outgoing relationships again: those that ended at it are
// gone); otherwise 1 to tx-max records, each a node update (45%), a
// relationship update (32%), a new relationship between existing nodes
// (8%), a relationship delete (13%) or a node delete (2%). With -tx-max 1
// every transaction is one record (no new-node or move transactions).
func mixedLog(lw *logWriter, g *graphState, n int) error {
	r := lw.rng
	s := &lw.stats
	var ops []op
	rev := uint64(0)
	for s.records < n {
		left := n - s.records
		ops = ops[:0]
		rev++
		p := r.IntN(100)
		if lw.txMax > 1 && p < 3 && left >= 4 {
			i := int32(len(g.nAlive))
			g.nTier = append(g.nTier, uint8(r.IntN(len(g.tiers))))
			g.nLabels = append(g.nLabels, uint8(r.IntN(len(g.labels))))
			g.nInc = append(g.nInc, 0)
			g.nAlive = append(g.nAlive, true)
			g.nOut = append(g.nOut, -1)
			g.nOutN = append(g.nOutN, 0)
			ops = append(ops, op{tier: g.tiers[g.nTier[i]], record: lw.nodeRecord(g, i, rev)})
			s.nodeInserts++
			for range 1 + r.IntN(3) {
				k := g.newRel(i, lw.aliveNode(g), uint8(r.IntN(len(g.types))))
				ops = append(ops, op{tier: g.tiers[g.rTier[k]], record: lw.relRecord(g, k)})
				s.relInserts++
			}
			if err := lw.tx(ops); err != nil {
				return err
			}
			continue
		}
		if lw.txMax > 1 && p < 5 && len(g.tiers) > 1 {
			i := lw.aliveNode(g)
			if out := g.outRels(i); len(out)+2 <= left {
				old := g.nTier[i]
				ops = append(ops, op{tier: g.tiers[old], delete: true, kind: "node", id: "n" + strconv.Itoa(int(i))})
				g.nInc[i]++
				g.nTier[i] = uint8((int(old) + 1 + r.IntN(len(g.tiers)-1)) % len(g.tiers))
				ops = append(ops, op{tier: g.tiers[g.nTier[i]], record: lw.nodeRecord(g, i, rev)})
				for _, k := range out {
					g.rTier[k] = g.nTier[i]
					g.rStartInc[k], g.rEndInc[k] = g.nInc[g.rStart[k]], g.nInc[g.rEnd[k]]
					ops = append(ops, op{tier: g.tiers[g.rTier[k]], record: lw.relRecord(g, k)})
				}
				s.moves++
				s.moveRecords += len(ops)
				if err := lw.tx(ops); err != nil {
					return err
				}
				continue
			}
		}
		size := min(left, 1+r.IntN(lw.txMax))
		for len(ops) < size {
			rev++
			switch p := r.IntN(100); {
			case p < 45:
				i := lw.aliveNode(g)
				ops = append(ops, op{tier: g.tiers[g.nTier[i]], record: lw.nodeRecord(g, i, rev)})
				s.nodeUpdates++
			case p < 77:
				k := lw.liveRel(g)
				if k < 0 {
					continue
				}
				ops = append(ops, op{tier: g.tiers[g.rTier[k]], record: lw.relRecord(g, k)})
				s.relUpdates++
			case p < 85:
				k := g.newRel(lw.aliveNode(g), lw.aliveNode(g), uint8(r.IntN(len(g.types))))
				ops = append(ops, op{tier: g.tiers[g.rTier[k]], record: lw.relRecord(g, k)})
				s.relInserts++
			case p < 98:
				k := lw.liveRel(g)
				if k < 0 {
					continue
				}
				g.rAlive[k] = false
				ops = append(ops, op{tier: g.tiers[g.rTier[k]], delete: true, kind: "relationship", id: g.relID(k)})
				s.relDeletes++
			default:
				i := lw.aliveNode(g)
				g.nAlive[i] = false
				g.nInc[i]++
				ops = append(ops, op{tier: g.tiers[g.nTier[i]], delete: true, kind: "node", id: "n" + strconv.Itoa(int(i))})
				s.nodeDeletes++
			}
		}
		if err := lw.tx(ops); err != nil {
			return err
		}
	}
	return nil
}
