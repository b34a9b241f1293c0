// Package graphgen writes deterministic sample graphs in the Neo4j APOC JSON
// Lines format, split into tiers whose relationships cross tiers. The same
// options always give byte-identical files, so tests, the demo and the
// benchmarks can rely on it without any downloaded data.
package graphgen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Tiers are the tier names, in the order nodes are dealt to them.
var Tiers = []string{"fast", "warm", "cold"}

// Options shape a graph.
type Options struct {
	// Nodes is the number of nodes across all tiers.
	Nodes int
	// RelsPerNode is the number of relationships starting at each node.
	RelsPerNode int
	// Seed selects the graph.
	Seed uint64
	// Change is the fraction of records (0..1) whose properties differ
	// from the graph with Change 0; ChangeSeed selects which, so two
	// versions of a graph can model "1% of records changed".
	Change     float64
	ChangeSeed uint64
}

func (o Options) withDefaults() Options {
	if o.RelsPerNode == 0 {
		o.RelsPerNode = 3
	}
	return o
}

// tierOf deals nodes to tiers: 20% fast, 40% warm, 40% cold.
func tierOf(i int) int {
	switch d := i % 10; {
	case d < 2:
		return 0
	case d < 6:
		return 1
	}
	return 2
}

// mix is splitmix64: a cheap, well-distributed hash for deterministic choices.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (o Options) changed(record uint64) bool {
	if o.Change <= 0 {
		return false
	}
	return float64(mix(record^o.ChangeSeed^0x5bd1e995)%1_000_000) < o.Change*1_000_000
}

var (
	firstNames = []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Ken", "Zoë", "Jürgen", "Małgorzata", "Ngọc", "李娜", "Олег", "Søren", "Amélie"}
	labels     = [][]string{{"Person"}, {"Person", "Employee"}, {"Company", "Organisation"}, {"Post"}, {"Tag"}}
	relTypes   = []string{"KNOWS", "LIKES", "WORKS_AT", "HAS_TAG"}
)

// writeNode appends node i as one JSON line.
func (o Options) writeNode(b []byte, i int) []byte {
	h := mix(uint64(i) ^ o.Seed)
	if o.changed(uint64(i)) {
		h = mix(h ^ o.ChangeSeed)
	}
	ls := labels[h%uint64(len(labels))]
	b = append(b, `{"type":"node","id":"n`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","labels":`...)
	b = appendLabels(b, ls)
	b = append(b, `,"properties":{"name":`...)
	b = strconv.AppendQuote(b, firstNames[h%uint64(len(firstNames))]+" "+strconv.FormatUint(h%100000, 36))
	b = append(b, `,"born":`...)
	b = strconv.AppendInt(b, 1900+int64(h>>8%120), 10)
	b = append(b, `,"score":`...)
	b = strconv.AppendFloat(b, float64(h>>16%1_000_000)/997.0, 'g', -1, 64)
	if h%7 == 0 {
		// Beyond 2^53: must survive a round trip exactly.
		b = append(b, `,"big":`...)
		b = strconv.AppendUint(b, 1<<53+h%1000+1, 10)
	}
	if h%5 == 0 {
		b = append(b, `,"emails":["a`...)
		b = strconv.AppendUint(b, h%997, 10)
		b = append(b, `@example.org","b@example.org"]`...)
	}
	if h%11 == 0 {
		b = append(b, `,"meta":{"source":"gen","weights":[1,2.5,null],"nested":{"ok":true}}`...)
	}
	if h%13 == 0 {
		b = append(b, `,"note":null`...)
	}
	b = append(b, `,"bio":"`...)
	// Text that compresses like real prose, with variety per node.
	for k := uint64(0); k < 3+h%5; k++ {
		w := mix(h + k)
		b = append(b, loremWords[w%uint64(len(loremWords))]...)
		b = append(b, ' ')
	}
	b = append(b, `"}}`...)
	return append(b, '\n')
}

var loremWords = []string{"graph", "node", "edge", "backup", "tier", "snapshot", "lorem", "ipsum", "dolor", "sit", "amet", "data", "consistent", "cut", "replica", "restore", "query", "index", "cluster", "shard"}

// writeRel appends relationship j of node i.
func (o Options) writeRel(b []byte, i, j, nodes int) []byte {
	rec := uint64(nodes) + uint64(i)*uint64(o.RelsPerNode) + uint64(j)
	h := mix(rec ^ o.Seed)
	end := int(mix(h) % uint64(nodes))
	if o.changed(rec) {
		h = mix(h ^ o.ChangeSeed)
	}
	typ := relTypes[(uint64(i)+uint64(j))%uint64(len(relTypes))]
	sl := labels[mix(uint64(i)^o.Seed)%uint64(len(labels))]
	el := labels[mix(uint64(end)^o.Seed)%uint64(len(labels))]
	b = append(b, `{"type":"relationship","id":"r`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(j), 10)
	b = append(b, `","label":"`...)
	b = append(b, typ...)
	b = append(b, `","start":{"id":"n`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","labels":`...)
	b = appendLabels(b, sl)
	b = append(b, `},"end":{"id":"n`...)
	b = strconv.AppendInt(b, int64(end), 10)
	b = append(b, `","labels":`...)
	b = appendLabels(b, el)
	b = append(b, '}')
	if h%3 != 0 {
		b = append(b, `,"properties":{"since":`...)
		b = strconv.AppendInt(b, 1990+int64(h%35), 10)
		b = append(b, `,"weight":`...)
		b = strconv.AppendFloat(b, math.Round(float64(h>>20%10000))/100, 'f', -1, 64)
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

func appendLabels(b []byte, ls []string) []byte {
	b = append(b, '[')
	for j, l := range ls {
		if j > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, l)
	}
	return append(b, ']')
}

// Write writes one tier (an index into Tiers): its nodes, then the
// relationships that start at them (which may end in any tier).
func Write(w io.Writer, tier int, o Options) error {
	o = o.withDefaults()
	bw := bufio.NewWriterSize(w, 1<<20)
	buf := make([]byte, 0, 1024)
	for i := 0; i < o.Nodes; i++ {
		if tierOf(i) == tier {
			buf = o.writeNode(buf[:0], i)
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("write graph: %w", err)
			}
		}
	}
	for i := 0; i < o.Nodes; i++ {
		if tierOf(i) != tier {
			continue
		}
		for j := 0; j < o.RelsPerNode; j++ {
			buf = o.writeRel(buf[:0], i, j, o.Nodes)
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("write graph: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return nil
}

// WriteDir writes <dir>/<tier>.jsonl for every tier and returns the total size.
func WriteDir(dir string, o Options) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("write graph: %w", err)
	}
	var total int64
	for t, name := range Tiers {
		p := filepath.Join(dir, name+".jsonl")
		f, err := os.Create(p)
		if err != nil {
			return total, fmt.Errorf("write graph: %w", err)
		}
		err = Write(f, t, o)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return total, err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return total, fmt.Errorf("write graph: %w", err)
		}
		total += fi.Size()
	}
	return total, nil
}
