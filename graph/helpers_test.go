package graph

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// randGen writes random graph lines with awkward content: numbers of every
// shape, escapes, unicode and lone surrogates, nested values, unsorted keys
// and whitespace. The same seed gives the same lines.
type randGen struct {
	r *rand.Rand
}

func newRandGen(seed uint64) *randGen { return &randGen{r: rand.New(rand.NewPCG(seed, 7))} }

var randPieces = []string{"a", "é", "李", "😀", `\u00e9`, `\ud83d\ude00`, `\ud800`, `\n`, `\"`, `\\`, `\/`, `\u0001`, "\x7f", " ", "Z", "0", `\uE000`, "\u2028"}

func (g *randGen) str(maxPieces int) string {
	var b strings.Builder
	b.WriteByte('"')
	for n := g.r.IntN(maxPieces + 1); n > 0; n-- {
		b.WriteString(randPieces[g.r.IntN(len(randPieces))])
	}
	b.WriteByte('"')
	return b.String()
}

var randNumbers = []string{"0", "-0", "1", "-17", "9007199254740993", "123456789012345678901234567890",
	"1.0", "-0.0", "1.50", "3.14159", "1e400", "1E-7", "0.0000001", "0.000001", "2.5e+3", "-1e-10",
	"100e-2", "0e5", "0.00", "1e0", "12.5E2"}

func (g *randGen) value(depth int) string {
	switch k := g.r.IntN(10); {
	case k < 3:
		return randNumbers[g.r.IntN(len(randNumbers))]
	case k < 6:
		return g.str(6)
	case k == 6:
		return [...]string{"true", "false", "null"}[g.r.IntN(3)]
	case k == 7 && depth < 3:
		parts := make([]string, g.r.IntN(4))
		for i := range parts {
			parts[i] = g.value(depth + 1)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case depth < 3:
		return g.object(depth+1, g.r.IntN(5))
	}
	return "null"
}

// object writes n members with distinct keys, in random order.
func (g *randGen) object(depth, n int) string {
	seen := map[int]bool{}
	var parts []string
	for len(parts) < n {
		// Keys must stay distinct after decoding: number them, and spell
		// them in ways that sort differently raw and decoded.
		i := g.r.IntN(20)
		if seen[i] {
			continue
		}
		seen[i] = true
		k := [...]string{`"k`, `"\u006b`, `"é`, `"\ud800`, `"😀`, `"K`}[i%6] + strconv.Itoa(i) + `"`
		parts = append(parts, k+":"+g.value(depth))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// id returns an id from a small pool (so that ids repeat) with odd bytes.
func (g *randGen) id(pool int) string {
	n := g.r.IntN(pool)
	switch n % 5 {
	case 0:
		return `"n` + strconv.Itoa(n) + `"`
	case 1:
		return `"é` + strconv.Itoa(n) + `"`
	case 2:
		return `"\ud800` + strconv.Itoa(n) + `"`
	case 3:
		return `"😀` + strconv.Itoa(n) + `"`
	}
	return `"N\u00e9` + strconv.Itoa(n) + `"`
}

var randLabels = []string{`[]`, `["Person"]`, `["Post"]`, `["Person","Employee"]`, `["Employee","Person"]`}

// line returns one record line; ids come from pools of the given size.
func (g *randGen) line(nodePool, relPool int) string {
	var members []string
	if g.r.IntN(3) > 0 {
		members = []string{`"type":"node"`, `"id":` + g.id(nodePool)}
		if g.r.IntN(4) > 0 {
			members = append(members, `"labels":`+randLabels[g.r.IntN(len(randLabels))])
		}
	} else {
		members = []string{`"type":"relationship"`, `"id":"r` + strconv.Itoa(g.r.IntN(relPool)) + `"`,
			`"label":"` + [...]string{"KNOWS", "LIKES", "HAS_TAG"}[g.r.IntN(3)] + `"`,
			`"start":{"id":` + g.id(nodePool) + `,"labels":` + randLabels[g.r.IntN(len(randLabels))] + `}`,
			`"end":{"labels":` + randLabels[g.r.IntN(len(randLabels))] + `,"id":` + g.id(nodePool) + `}`}
	}
	if g.r.IntN(5) > 0 {
		members = append(members, `"properties":`+g.object(1, g.r.IntN(6)))
	}
	g.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	sep := ","
	if g.r.IntN(8) == 0 {
		sep = " , "
	}
	return "{" + strings.Join(members, sep) + "}"
}

// readAll reads every record of text, failing the test on any error.
func readAll(t testing.TB, text, tier string) []*Record {
	t.Helper()
	var out []*Record
	r := NewReader(strings.NewReader(text), tier)
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", tier, err)
		}
		out = append(out, rec)
	}
}

// drain returns every record of it and closes it.
func drain(t testing.TB, it Iterator) []*Record {
	t.Helper()
	var out []*Record
	each(t, it, func(rec *Record) { out = append(out, rec) })
	return out
}

// each calls fn with every record of it, before asking for the next, and
// closes it.
func each(t testing.TB, it Iterator, fn func(*Record)) {
	t.Helper()
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("iterate: %v", err)
		}
		fn(rec)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// sortedState returns recs in canonical order with one record per key (the
// last one given wins): a valid state.
func sortedState(recs []*Record) []*Record {
	s := slices.Clone(recs)
	slices.SortStableFunc(s, Compare)
	var out []*Record
	for _, r := range s {
		if n := len(out); n > 0 && Compare(out[n-1], r) == 0 {
			out[n-1] = r
			continue
		}
		out = append(out, r)
	}
	return out
}

func canonicalLines(recs []*Record) string {
	var b strings.Builder
	for _, r := range recs {
		b.Write(r.Canonical)
		b.WriteByte('\n')
	}
	return b.String()
}

func describe(r *Record) string {
	return fmt.Sprintf("%s %q line %d", r.Kind, r.ID, r.Line)
}

// records reads n random lines (ids among nodes and rels) as tier.
func (g *randGen) records(t testing.TB, n, nodes, rels int, tier string) []*Record {
	t.Helper()
	lines := make([]string, n)
	for i := range lines {
		lines[i] = g.line(nodes, rels)
	}
	return readAll(t, strings.Join(lines, "\n"), tier)
}

// checkTiers adds the tiers to c in the order of names and finishes it.
func checkTiers(t testing.TB, c *Checker, names []string, tiers map[string][]*Record) *Report {
	t.Helper()
	for _, tier := range names {
		for _, r := range tiers[tier] {
			if err := c.Add(tier, r.Line, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := c.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
