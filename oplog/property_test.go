package oplog

// Property test: Replay against the model of model_test.go on random graphs
// and random mutation logs.
//
// The generator covers: tiers fast/warm/cold (one sometimes missing from the
// input, so only the log names it) and archive (only the log names it);
// nodes with labels and properties (ints beyond 2^53, decimals, unicode and
// escaped strings, nested lists and maps, null, missing properties/labels);
// relationships between nodes of any tier, dangling ones, self loops; node
// and relationship ids from one number space (node "5" and relationship "5"
// coexist), some non-ASCII or with spaces so byte order differs from numeric
// order. Mutations: upserts of new nodes and relationships, updates
// (properties, labels, relationship endpoints), node deletes (detach; also
// of absent nodes and from the wrong tier), relationship deletes (also
// absent), resurrected node ids, the same id upserted into a second tier,
// and tier moves (in one transaction: delete the node from its tier, upsert
// it in another, upsert again some of its relationships, sometimes one
// upserted before the delete so the delete detaches it). Transactions: lone
// records, tx + tx_end, tx_end false, a tx closed by a record of another tx
// (tx ids are drawn from a small set of integers and strings, so a tx is
// often reused, and the integer 3 may follow the string "3"), an open
// trailing transaction. Lsns: any start, prev_lsn on the first record,
// sparse runs with prev_lsn, prev_lsn that is just lsn-1. Timestamps: mixed
// precision and zones, equal ts, a ts that goes backwards (clamped) and
// clock steps back. Targets: the whole log, --lsn (0, in gaps, inside
// transactions, at the end, beyond the end), --at (exactly at a record's
// effective ts, 1ns around it, before and after the log), and --after-lsn K
// over the model's state at K (K inside a transaction too) with any of
// those, on the whole log or on a suffix starting at or before K+1 (and one
// starting too late: an error). Half the replays run with a 1 or 4 KiB sort
// memory so the deltas spill to disk; no temporary file may be left after
// Close (or after Replay fails).
//
// STRATA_THOROUGH=1 runs many more seeds. A disagreement is shrunk to a
// small case and printed; STRATA_PROPERTY_DUMP=DIR also writes it as tier
// files, oplog.jsonl and graphref.sh there.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-backup/strata/graph"
)

// ---------------------------------------------------------------- cases

// propCase is one replay to check: input tiers, the log given to Replay
// and the target.
type propCase struct {
	base pmState
	log  []*pmEntry
	cut  pmCut
	mem  int64
	// spilled: the last check found sorted runs in TmpDir.
	spilled bool
	// recs are the log's records as ParseRecord gives them, parsed once
	// for all the cases of a log; nil: Replay reads the log's text with
	// NewReader.
	recs []*Record
}

// propLog streams parsed records as a Reader would: a fresh copy of each,
// checked by its own Validator (continuity, clamping).
type propLog struct {
	recs []*Record
	v    *Validator
}

func (l *propLog) Validator() *Validator { return l.v }

func (l *propLog) Next() (*Record, error) {
	if len(l.recs) == 0 {
		return nil, io.EOF
	}
	r := *l.recs[0]
	l.recs = l.recs[1:]
	if err := l.v.Check(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// parseLog parses the log's lines one by one.
func parseLog(log []*pmEntry) ([]*Record, error) {
	recs := make([]*Record, len(log))
	for i, e := range log {
		r, err := ParseRecord(e.text(), i+1)
		if err != nil {
			return nil, fmt.Errorf("test bug: %s: %v", e.text(), err)
		}
		recs[i] = r
	}
	return recs, nil
}

// lsnTarget picks an lsn around the log: 0, before it, at or inside it
// (in a sparse gap, inside a transaction), at its end or beyond.
func (g *pgen) lsnTarget(log []*pmEntry, beyond bool) uint64 {
	if len(log) == 0 {
		return uint64(g.r.IntN(2))
	}
	last := log[len(log)-1].lsn
	switch k := g.r.IntN(20); {
	case k == 0:
		return 0
	case k == 1:
		return log[0].lsn - 1
	case k < 4:
		return last
	case k == 4 && beyond:
		return last + 1 + uint64(g.r.IntN(3))
	case k < 8:
		return log[g.r.IntN(len(log))].lsn - 1
	}
	return log[g.r.IntN(len(log))].lsn
}

// atTarget picks a time around the log, exact to the nanosecond.
func (g *pgen) atTarget(log []*pmEntry) (time.Time, string) {
	var t time.Time
	switch k := g.r.IntN(10); {
	case len(log) == 0 || k == 0:
		t = pgBase.Add(-time.Hour)
	case k == 1:
		t = log[len(log)-1].ts.Add(time.Second + time.Duration(g.r.IntN(1e9))*time.Millisecond)
	case k < 4:
		t = log[g.r.IntN(len(log))].ts // maybe before its effective ts
	default:
		// a record's effective ts, exactly or 1ns around it
		i := g.r.IntN(len(log))
		for j := 0; j <= i; j++ {
			if log[j].ts.After(t) {
				t = log[j].ts
			}
		}
		t = t.Add(time.Duration(g.r.IntN(3) - 1))
	}
	min := pgPick(g.r, []int{0, 60, -300, 330})
	return t, pgTS(t, min, 9, nil)
}

// cases generates one graph and log and the replays to check on them.
func (g *pgen) cases(n int) ([]*propCase, error) {
	base := g.base()
	log := g.log(g.r.IntN(90))
	if g.chance(0.03) {
		log = nil
	}
	recs, err := parseLog(log)
	if err != nil {
		return nil, err
	}
	var out []*propCase
	for len(out) < n {
		c := &propCase{base: base, log: log, recs: recs}
		switch k := g.r.IntN(10); {
		case k == 0:
		case k < 4:
			c.cut.hasLSN, c.cut.lsn = true, g.lsnTarget(log, true)
		case k < 6:
			t, s := g.atTarget(log)
			c.cut.at, c.cut.atText = &t, s
		default:
			// A snapshot cut at K (the model's state at K), then the log
			// after it up to a target.
			K := g.lsnTarget(log, false)
			snap := pmReplay(base, log, pmCut{hasLSN: true, lsn: K})
			if snap.err != "" {
				continue
			}
			c.base = snap.state
			c.cut.hasAfter, c.cut.after = true, K
			switch g.r.IntN(3) {
			case 0:
				c.cut.hasLSN, c.cut.lsn = true, max(K, g.lsnTarget(log, true))
			case 1:
				t, s := g.atTarget(log)
				c.cut.at, c.cut.atText = &t, s
			}
			// A suffix of the log that still starts at or before K+1
			// (rarely one that starts too late).
			if g.chance(0.3) && len(log) > 0 {
				var ok, late []int
				for j, e := range log {
					if e.hasPrev && e.prev <= K || !e.hasPrev && e.lsn <= K+1 {
						ok = append(ok, j)
					} else {
						late = append(late, j)
					}
				}
				if log[len(log)-1].lsn <= K {
					ok = append(ok, len(log)) // nothing after K: an empty suffix
				}
				j := 0
				switch {
				case g.chance(0.1) && len(late) > 0:
					j = pgPick(g.r, late)
				case log[len(log)-1].lsn <= K && g.chance(0.5):
					j = len(log) // as restore reads it for a cut at the log's end
				case len(ok) > 0:
					j = pgPick(g.r, ok)
				}
				c.log, c.recs = log[j:], recs[j:]
			}
		}
		switch k := g.r.IntN(10); {
		case k < 3:
			c.mem = 1 << 10 // the Sorter's minimum: spills after a few records
		case k < 5:
			c.mem = 4 << 10
		case k < 9:
			c.mem = 1 << 20 // in memory
		}
		if g.chance(0.2) {
			c.recs = nil // through NewReader
		}
		out = append(out, c)
	}
	return out, nil
}

// ---------------------------------------------------------------- checking

func (c *propCase) options(tmp string) (ReplayOptions, error) {
	o := ReplayOptions{
		LSN: c.cut.lsn, HasLSN: c.cut.hasLSN,
		AfterLSN: c.cut.after, HasAfter: c.cut.hasAfter,
		MemLimit: c.mem, TmpDir: tmp,
	}
	if c.cut.at != nil {
		t, err := ParseTime(c.cut.atText)
		if err != nil {
			return o, err
		}
		o.At = &t
	}
	return o, nil
}

// tiers returns the input tiers as canonical streams (records parsed from
// the model's canonical lines, sorted by the model's order).
func (c *propCase) tiers() (map[string]graph.Iterator, error) {
	out := map[string]graph.Iterator{}
	for _, n := range c.base.names() {
		sorted := c.base.sorted(n)
		var text []byte
		for _, r := range sorted {
			text = append(append(text, r.canon...), '\n')
		}
		rd := graph.NewReader(bytes.NewReader(text), n)
		for _, r := range sorted {
			g, err := rd.Next()
			if err != nil {
				return nil, fmt.Errorf("test bug: base record %s: %v", r.canon, err)
			}
			if !bytes.Equal(g.Canonical, r.canon) {
				return nil, fmt.Errorf("test bug: the model's canonical line %s is %s for graph", r.canon, g.Canonical)
			}
		}
		// As a restore reads a stored tier: each record valid only until
		// the next, so a merge that holds one longer fails here.
		out[n] = graph.NewBorrowedLineIterator(bytes.NewReader(text), n)
	}
	return out, nil
}

func pmTxString(t pmTx) string {
	if t.isInt {
		return t.v
	}
	return strconv.Quote(t.v)
}

// sameInfo compares a TxInfo with the model's. Straddle's LastLSN is not
// known to Replay (it stops reading), and its Records counts the records
// inside the cut.
func sameInfo(what string, got *TxInfo, want *pmTxInfo, straddle bool) string {
	switch {
	case got == nil && want == nil:
		return ""
	case got == nil:
		return fmt.Sprintf("%s: want tx %s at lsn %d (%d records), got none", what, pmTxString(want.tx), want.firstLSN, want.records)
	case want == nil:
		return fmt.Sprintf("%s: want none, got %+v", what, *got)
	}
	wt := Tx{Set: want.tx.set, Int: want.tx.isInt, V: want.tx.v}
	if got.Tx != wt || got.FirstLSN != want.firstLSN || got.Records != want.records || !straddle && got.LastLSN != want.lastLSN {
		return fmt.Sprintf("%s: want tx %s lsn %d..%d (%d records), got %+v", what, pmTxString(want.tx), want.firstLSN, want.lastLSN, want.records, *got)
	}
	return ""
}

// check runs Replay on c and compares it with the model; it returns the
// first disagreement ("" if none).
func (c *propCase) check(tmp string) string {
	want := pmReplay(c.base, c.log, c.cut)
	opts, err := c.options(tmp)
	if err != nil {
		return "parse target: " + err.Error()
	}
	tiers, err := c.tiers()
	if err != nil {
		return err.Error()
	}
	var log Iterator = &propLog{recs: c.recs, v: NewValidator()}
	if c.recs == nil {
		log = NewReader(bytes.NewReader(pmLogText(c.log)))
	}
	res, err := Replay(tiers, log, opts)
	if want.err != "" || err != nil {
		if res != nil {
			res.Close()
		}
		switch {
		case want.err != "" && err == nil:
			return "error: want an error (" + want.err + "), Replay succeeded"
		case want.err == "" && err != nil:
			return "error: Replay failed: " + err.Error()
		}
		return leftovers(tmp)
	}
	ents, _ := os.ReadDir(tmp)
	c.spilled = len(ents) > 0
	var p []string
	add := func(s string) {
		if s != "" {
			p = append(p, s)
		}
	}
	count := func(what string, got, want any) {
		if got != want {
			add(fmt.Sprintf("counter %s: want %v, got %v", what, want, got))
		}
	}
	count("Transactions", res.Transactions, want.txs)
	count("Applied", res.Applied, want.applied)
	count("Skipped", res.Skipped, want.skipped)
	count("LastLSN", res.LastLSN, want.lastLSN)
	count("LastTS", res.LastTS, want.lastTS)
	count("Clamped", res.Clamped, want.clamped)
	add(sameInfo("counter Open", res.Open, want.open, false))
	add(sameInfo("counter Straddle", res.Straddle, want.straddle, true))

	// Tier names: the input tiers and those an applied record names.
	if got, w := res.TierNames(), want.state.names(); strings.Join(got, ",") != strings.Join(w, ",") {
		add(fmt.Sprintf("tiers: want %q, got %q", w, got))
	}
	for _, n := range res.TierNames() {
		exp := want.state.sorted(n)
		it := res.Tiers[n]
		var prev *pmKey // the output may be borrowed too: keep keys, not records
		for i := 0; ; i++ {
			rec, err := it.Next()
			if errors.Is(err, io.EOF) {
				if i < len(exp) {
					add(fmt.Sprintf("tier %s: ends after %d records, want %d; next: %s", n, i, len(exp), exp[i].canon))
				}
				break
			}
			if err != nil {
				add(fmt.Sprintf("tier %s: record %d: %v", n, i+1, err))
				break
			}
			k := pmKey{rec.Kind, rec.ID}
			if prev != nil && !pmLess(*prev, k) {
				add(fmt.Sprintf("tier %s: %s %q after %v: not in canonical order", n, rec.Kind, rec.ID, *prev))
				break
			}
			prev = &k
			if i >= len(exp) {
				add(fmt.Sprintf("tier %s: extra record %s", n, rec.Canonical))
				break
			}
			e := exp[i]
			if k != e.key() || !bytes.Equal(rec.Canonical, e.canon) || rec.Tombstone ||
				rec.Kind == graph.KindRelationship && (rec.StartID != e.start || rec.EndID != e.end) {
				add(fmt.Sprintf("tier %s: record %d:\n  want %s\n  got  %s (tombstone %v, start %q, end %q)",
					n, i+1, e.canon, rec.Canonical, rec.Tombstone, rec.StartID, rec.EndID))
				break
			}
		}
	}
	if err := res.Close(); err != nil {
		add("close: " + err.Error())
	}
	add(leftovers(tmp))
	return strings.Join(p, "\n")
}

// leftovers reports (and removes) files left in the sort's TmpDir after
// the result is closed or Replay failed.
func leftovers(tmp string) string {
	ents, _ := os.ReadDir(tmp)
	if len(ents) == 0 {
		return ""
	}
	for _, e := range ents {
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
	return fmt.Sprintf("tempfiles: %d left in TmpDir (first %s)", len(ents), ents[0].Name())
}

// kind is a disagreement's category, kept while shrinking.
func problemKind(p string) string {
	k, _, _ := strings.Cut(p, ":")
	if strings.HasPrefix(k, "tier ") {
		return "tier"
	}
	return k
}

// ---------------------------------------------------------------- shrinking

// relink restores lsn continuity after records were removed: a record whose
// predecessor changed names it with prev_lsn.
func relink(log []*pmEntry) []*pmEntry {
	out := make([]*pmEntry, len(log))
	for i, e := range log {
		c := *e
		if i > 0 {
			if p := log[i-1].lsn; c.hasPrev || c.lsn != p+1 {
				c.hasPrev, c.prev = true, p
			}
		}
		out[i] = &c
	}
	return out
}

// shrink removes log records, base records and properties while the same
// kind of disagreement remains.
func (c *propCase) shrink(tmp string) *propCase {
	kind := problemKind(c.check(tmp))
	fails := func(d *propCase) bool {
		p := d.check(tmp)
		return p != "" && problemKind(p) == kind
	}
	c0 := *c
	c0.recs = nil // the log changes: read its text
	cur := &c0
	for changed := true; changed; {
		changed = false
		for i := len(cur.log) - 1; i >= 0; i-- {
			if i >= len(cur.log) {
				continue
			}
			d := *cur
			d.log = relink(append(append([]*pmEntry{}, cur.log[:i]...), cur.log[i+1:]...))
			if fails(&d) {
				cur, changed = &d, true
			}
		}
		for _, n := range cur.base.names() {
			d := *cur
			d.base = cur.base.clone()
			delete(d.base, n)
			if fails(&d) {
				cur, changed = &d, true
				continue
			}
			for _, r := range cur.base.sorted(n) {
				d := *cur
				d.base = cur.base.clone()
				delete(d.base[n], r.key())
				if fails(&d) {
					cur, changed = &d, true
				}
			}
		}
		strip := func(r *pmRec) *pmRec {
			v := map[string]any{}
			for k, x := range r.val {
				if k != "properties" && k != "labels" {
					v[k] = x
				}
				if k == "start" || k == "end" {
					v[k] = map[string]any{"id": x.(map[string]any)["id"]}
				}
			}
			return pmNewRec(v)
		}
		for i, e := range cur.log {
			if e.up == nil || bytes.Equal(strip(e.up).canon, e.up.canon) {
				continue
			}
			d := *cur
			d.log = append([]*pmEntry{}, cur.log...)
			ne := *e
			ne.up = strip(e.up)
			d.log[i] = &ne
			if fails(&d) {
				cur, changed = &d, true
			}
		}
		for _, n := range cur.base.names() {
			for _, r := range cur.base.sorted(n) {
				s := strip(r)
				if bytes.Equal(s.canon, r.canon) {
					continue
				}
				d := *cur
				d.base = cur.base.clone()
				d.base[n][r.key()] = s
				if fails(&d) {
					cur, changed = &d, true
				}
			}
		}
		if cur.mem != 0 {
			d := *cur
			d.mem = 0
			if fails(&d) {
				cur, changed = &d, true
			}
		}
	}
	return cur
}

// describe prints a case: its tiers, log and target.
func (c *propCase) describe() string {
	var b strings.Builder
	for _, n := range c.base.names() {
		fmt.Fprintf(&b, "tier %s:\n", n)
		for _, r := range c.base.sorted(n) {
			fmt.Fprintf(&b, "  %s\n", r.canon)
		}
	}
	fmt.Fprintf(&b, "oplog.jsonl:\n")
	for _, e := range c.log {
		fmt.Fprintf(&b, "  %s\n", e.text())
	}
	fmt.Fprintf(&b, "target: %s, MemLimit %d\n", c.cut, c.mem)
	return b.String()
}

// dump writes the case as files graphref can run on (tier files,
// oplog.jsonl, graphref.sh) and returns graphref's arguments.
func (c *propCase) dump(dir, tool string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args := []string{tool, "state"}
	for _, n := range c.base.names() {
		var b []byte
		for _, r := range c.base.sorted(n) {
			b = append(append(b, r.canon...), '\n')
		}
		if err := os.WriteFile(filepath.Join(dir, n+".jsonl"), b, 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--tier", n+"="+filepath.Join(dir, n+".jsonl"))
	}
	if err := os.WriteFile(filepath.Join(dir, "oplog.jsonl"), pmLogText(c.log), 0o644); err != nil {
		return nil, err
	}
	args = append(args, "--oplog", filepath.Join(dir, "oplog.jsonl"))
	if c.cut.hasLSN {
		args = append(args, "--lsn", strconv.FormatUint(c.cut.lsn, 10))
	}
	if c.cut.at != nil {
		args = append(args, "--at", c.cut.atText)
	}
	if c.cut.hasAfter {
		args = append(args, "--after-lsn", strconv.FormatUint(c.cut.after, 10))
	}
	args = append(args, "--out", filepath.Join(dir, "out"))
	sh := "python3 " + strings.Join(args, " ") + "\n"
	return args, os.WriteFile(filepath.Join(dir, "graphref.sh"), []byte(sh), 0o755)
}

// ---------------------------------------------------------------- the test

func TestReplayProperty(t *testing.T) {
	seeds, perSeed := 100, 10
	if os.Getenv(thoroughEnv) == "1" {
		seeds = 3000
	}
	tmp := t.TempDir()
	start := time.Now()
	var cases, records, spilled, failures int
	kinds, seen := map[string]int{}, map[string]int{}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		g := newPgen(seed)
		cs, err := g.cases(perSeed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for i, c := range cs {
			cases++
			records += len(c.log)
			if c.mem <= 4<<10 {
				spilled++
			}
			switch {
			case c.cut.hasAfter:
				kinds["after"]++
			case c.cut.hasLSN:
				kinds["lsn"]++
			case c.cut.at != nil:
				kinds["at"]++
			default:
				kinds["all"]++
			}
			w := pmReplay(c.base, c.log, c.cut)
			for what, yes := range map[string]bool{
				"error": w.err != "", "straddle": w.straddle != nil, "open": w.open != nil,
				"clamped": w.clamped > 0, "skipped": w.skipped > 0, "detach": w.detached > 0,
				"nothing applied": w.err == "" && w.applied == 0, "via NewReader": c.recs == nil,
			} {
				if yes {
					seen[what]++
				}
			}
			p := c.check(tmp)
			if c.spilled {
				seen["runs spilled to disk"]++
			}
			if p == "" {
				continue
			}
			failures++
			min := c.shrink(tmp)
			msg := fmt.Sprintf("seed %d case %d (%s): Replay disagrees with the model:\n%s\nshrunk to:\n%s%s",
				seed, i, c.cut, p, min.describe(), min.check(tmp))
			if dir := os.Getenv("STRATA_PROPERTY_DUMP"); dir != "" {
				d := filepath.Join(dir, fmt.Sprintf("seed%d-case%d", seed, i))
				tool, _ := filepath.Abs(filepath.Join("..", "..", "shared", "tools", "graphref.py"))
				if _, err := min.dump(d, tool); err != nil {
					t.Log(err)
				}
				msg += "\n(written to " + d + ")"
			}
			t.Error(msg)
			if failures >= 3 {
				t.FailNow()
			}
		}
	}
	t.Logf("%d seeds, %d replays (%d records, %d with a 1 or 4 KiB sort memory; targets %v; replays with %v) in %v",
		seeds, cases, records, spilled, kinds, seen, time.Since(start).Round(time.Millisecond))
}
