package oplog

// A from-first-principles model of oplog replay, for the property test in
// property_test.go. It follows ../shared/tools/graphref.py (read_oplog,
// group_transactions, choose_transactions, Graph.upsert/delete_*) and shares
// no code with replay.go: records are applied one at a time to a map per
// tier, and a node delete removes, at that point, every relationship in any
// tier that starts or ends at the node. Open, Straddle and Clamped follow
// ReplayResult's doc (graphref reports them on the whole log): Open only when
// the cut reaches the whole open transaction, Straddle when a transaction
// starts inside the cut and ends outside, Clamped over the records read (up
// to the first one outside the cut).

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/strata-backup/strata/graph"
)

// ---------------------------------------------------------------- JSON text

// pjNum is a JSON number literal, written as is (the generator only makes
// literals that Python's int/Decimal print back unchanged).
type pjNum string

// pjEnc writes JSON values. With r nil it writes graphref's canonical form
// (sorted keys, compact, strings as json.dumps(ensure_ascii=False)); with r
// set, an equivalent but scrambled form: shuffled keys, stray whitespace,
// needless \u and \/ escapes.
type pjEnc struct {
	b []byte
	r *rand.Rand
}

func pjCanonical(v any) []byte {
	e := pjEnc{}
	e.value(v)
	return e.b
}

func pjScrambled(v any, r *rand.Rand) []byte {
	e := pjEnc{r: r}
	e.value(v)
	return e.b
}

func (e *pjEnc) ws() {
	if e.r != nil && e.r.IntN(6) == 0 {
		e.b = append(e.b, " \t  \r"[e.r.IntN(5)])
	}
}

func (e *pjEnc) value(v any) {
	e.ws()
	switch v := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
	case bool:
		e.b = strconv.AppendBool(e.b, v)
	case pjNum:
		e.b = append(e.b, v...)
	case string:
		e.str(v)
	case []any:
		e.b = append(e.b, '[')
		for i, x := range v {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.value(x)
		}
		e.ws()
		e.b = append(e.b, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // UTF-8 byte order = code point order = Python's
		if e.r != nil {
			e.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		}
		e.b = append(e.b, '{')
		for i, k := range keys {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.ws()
			e.str(k)
			e.ws()
			e.b = append(e.b, ':')
			e.value(v[k])
		}
		e.ws()
		e.b = append(e.b, '}')
	default:
		panic(fmt.Sprintf("pjEnc: %T", v))
	}
	e.ws()
}

// str writes a string literal: Python's encode_basestring when canonical.
func (e *pjEnc) str(s string) {
	e.b = append(e.b, '"')
	for _, c := range s {
		switch {
		case c == '"':
			e.b = append(e.b, `\"`...)
		case c == '\\':
			e.b = append(e.b, `\\`...)
		case c == '\n':
			e.b = append(e.b, `\n`...)
		case c == '\r':
			e.b = append(e.b, `\r`...)
		case c == '\t':
			e.b = append(e.b, `\t`...)
		case c == '\b':
			e.b = append(e.b, `\b`...)
		case c == '\f':
			e.b = append(e.b, `\f`...)
		case c < 0x20:
			e.b = fmt.Appendf(e.b, `\u%04x`, c)
		case e.r != nil && c >= 0x80 && e.r.IntN(2) == 0:
			if c >= 0x10000 {
				a, b := utf16.EncodeRune(c)
				e.b = fmt.Appendf(e.b, `\u%04x\u%04X`, a, b)
			} else {
				e.b = fmt.Appendf(e.b, `\u%04X`, c)
			}
		case e.r != nil && c == '/' && e.r.IntN(2) == 0:
			e.b = append(e.b, `\/`...)
		case e.r != nil && c == 'a' && e.r.IntN(4) == 0:
			e.b = append(e.b, `\u0061`...)
		default:
			e.b = utf8.AppendRune(e.b, c)
		}
	}
	e.b = append(e.b, '"')
}

// ---------------------------------------------------------------- records

type pmKey struct {
	kind graph.Kind
	id   string
}

// pmRec is a graph record of the model: its value, identity, endpoints and
// the canonical line graphref writes for it.
type pmRec struct {
	val        map[string]any
	kind       graph.Kind
	id         string
	start, end string
	canon      []byte
}

func pmNewRec(val map[string]any) *pmRec {
	r := &pmRec{val: val, id: val["id"].(string)}
	if val["type"] == "relationship" {
		r.kind = graph.KindRelationship
		r.start = val["start"].(map[string]any)["id"].(string)
		r.end = val["end"].(map[string]any)["id"].(string)
	}
	r.canon = pjCanonical(val)
	return r
}

func (r *pmRec) key() pmKey { return pmKey{r.kind, r.id} }

// pmLess is the canonical order: nodes first, then the UTF-8 bytes of the id.
func pmLess(a, b pmKey) bool {
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.id < b.id
}

// pmTx is a record's tx field: absent, an integer (decimal text) or a string.
type pmTx struct {
	set, isInt bool
	v          string
}

// pmEntry is one mutation record of a generated log.
type pmEntry struct {
	lsn, prev uint64
	hasPrev   bool
	ts        time.Time // exact
	tsText    string
	tx        pmTx
	txEnd     int // 0 absent, 1 true, 2 false
	tier      string
	up        *pmRec // an upsert's record; nil for a delete
	delKind   graph.Kind
	delID     string
}

// text is the record's JSON line, fields and record scrambled (the same
// text for the same entry).
func (e *pmEntry) text() []byte {
	r := rand.New(rand.NewPCG(e.lsn, uint64(len(e.tsText))))
	v := map[string]any{
		"lsn":  pjNum(strconv.FormatUint(e.lsn, 10)),
		"ts":   e.tsText,
		"tier": e.tier,
	}
	if e.hasPrev {
		v["prev_lsn"] = pjNum(strconv.FormatUint(e.prev, 10))
	}
	if e.tx.set {
		if e.tx.isInt {
			v["tx"] = pjNum(e.tx.v)
		} else {
			v["tx"] = e.tx.v
		}
	}
	if e.txEnd != 0 {
		v["tx_end"] = e.txEnd == 1
	}
	if e.up != nil {
		v["op"] = "upsert"
		v["record"] = e.up.val
	} else {
		v["op"] = "delete"
		v["kind"] = e.delKind.String()
		v["id"] = e.delID
	}
	return pjScrambled(v, r)
}

func pmLogText(log []*pmEntry) []byte {
	var b []byte
	for _, e := range log {
		b = append(b, e.text()...)
		b = append(b, '\n')
	}
	return b
}

// ---------------------------------------------------------------- state

// pmState is tier -> (kind, id) -> record.
type pmState map[string]map[pmKey]*pmRec

func (s pmState) tier(name string) map[pmKey]*pmRec {
	t := s[name]
	if t == nil {
		t = map[pmKey]*pmRec{}
		s[name] = t
	}
	return t
}

func (s pmState) clone() pmState {
	c := pmState{}
	for n, t := range s {
		ct := c.tier(n)
		for k, r := range t {
			ct[k] = r
		}
	}
	return c
}

// apply applies one record (graphref's Graph.upsert / delete_*) and
// returns how many relationships a node delete detached.
func (s pmState) apply(e *pmEntry) (detached int) {
	t := s.tier(e.tier)
	switch {
	case e.up != nil:
		t[e.up.key()] = e.up
	case e.delKind == graph.KindRelationship:
		delete(t, pmKey{graph.KindRelationship, e.delID})
	default:
		delete(t, pmKey{graph.KindNode, e.delID})
		for _, tt := range s {
			for k, r := range tt {
				if k.kind == graph.KindRelationship && (r.start == e.delID || r.end == e.delID) {
					delete(tt, k)
					detached++
				}
			}
		}
	}
	return detached
}

// sorted returns a tier's records in canonical order.
func (s pmState) sorted(name string) []*pmRec {
	var out []*pmRec
	for _, r := range s[name] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return pmLess(out[i].key(), out[j].key()) })
	return out
}

func (s pmState) names() []string {
	var n []string
	for k := range s {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ---------------------------------------------------------------- replay

// pmCut is a replay target, as the graphref flags give it.
type pmCut struct {
	hasLSN   bool
	lsn      uint64
	at       *time.Time
	atText   string
	hasAfter bool
	after    uint64
}

func (c pmCut) String() string {
	var p []string
	if c.hasAfter {
		p = append(p, fmt.Sprintf("--after-lsn %d", c.after))
	}
	if c.hasLSN {
		p = append(p, fmt.Sprintf("--lsn %d", c.lsn))
	}
	if c.at != nil {
		p = append(p, "--at "+c.atText)
	}
	if len(p) == 0 {
		return "(no cut)"
	}
	return strings.Join(p, " ")
}

// pmTxInfo mirrors TxInfo.
type pmTxInfo struct {
	tx                pmTx
	firstLSN, lastLSN uint64
	records           int
}

// pmResult is what replaying the model gives.
type pmResult struct {
	err                   string // graphref refuses the target
	state                 pmState
	txs, applied, skipped int
	lastLSN               uint64
	lastTS                string
	open, straddle        *pmTxInfo
	clamped               int
	detached              int // relationships removed by node deletes
}

// pmReplay replays log over base (not modified) up to the cut.
func pmReplay(base pmState, log []*pmEntry, c pmCut) pmResult {
	var res pmResult
	// read_oplog: effective ts never decreases.
	eff := make([]time.Time, len(log))
	effText := make([]string, len(log))
	clamped := make([]bool, len(log))
	for i, e := range log {
		eff[i], effText[i] = e.ts, e.tsText
		if i > 0 && e.ts.Before(eff[i-1]) {
			eff[i], effText[i], clamped[i] = eff[i-1], effText[i-1], true
		}
	}
	// The refusals.
	if c.hasLSN {
		// The log reaches its last lsn; with --after-lsn K the tiers
		// already hold the state at K, so the replay given only the records
		// after K (as restore gives it) reaches K even if none follow.
		var end uint64
		if len(log) > 0 {
			end = log[len(log)-1].lsn
		}
		if c.hasAfter {
			end = max(end, c.after)
		}
		if c.lsn > end {
			res.err = fmt.Sprintf("the log does not reach lsn %d", c.lsn)
			return res
		}
	}
	if c.hasAfter && len(log) > 0 {
		f := log[0]
		if f.hasPrev && c.after < f.prev || !f.hasPrev && c.after+1 < f.lsn {
			res.err = fmt.Sprintf("the log misses records after lsn %d", c.after)
			return res
		}
	}
	// group_transactions.
	var txs [][]int
	var tailKey pmTx
	tailClosed := true
	for i, e := range log {
		if len(txs) > 0 && e.tx.set && e.tx == tailKey && !tailClosed {
			txs[len(txs)-1] = append(txs[len(txs)-1], i)
		} else {
			txs = append(txs, []int{i})
		}
		tailKey, tailClosed = e.tx, !e.tx.set || e.txEnd == 1
	}
	var open []int
	if len(txs) > 0 && !tailClosed {
		open, txs = txs[len(txs)-1], txs[:len(txs)-1]
	}
	within := func(i int) bool {
		return (!c.hasLSN || log[i].lsn <= c.lsn) && (c.at == nil || !eff[i].After(*c.at))
	}
	// choose_transactions: the longest prefix of whole transactions inside.
	chosen := 0
	for chosen < len(txs) && within(txs[chosen][len(txs[chosen])-1]) {
		chosen++
	}
	res.state = base.clone()
	for _, tx := range txs[:chosen] {
		for _, i := range tx {
			e := log[i]
			if c.hasAfter && e.lsn <= c.after {
				res.skipped++
				continue
			}
			res.applied++
			res.detached += res.state.apply(e)
		}
		res.txs++
		l := tx[len(tx)-1]
		res.lastLSN, res.lastTS = log[l].lsn, effText[l]
	}
	info := func(tx []int, n int) *pmTxInfo {
		return &pmTxInfo{tx: log[tx[0]].tx, firstLSN: log[tx[0]].lsn, lastLSN: log[tx[len(tx)-1]].lsn, records: n}
	}
	// The next transaction after the chosen ones: it straddles the cut if
	// it starts inside; the open trailing one is reported when the cut
	// reaches all of it.
	next := open
	if chosen < len(txs) {
		next = txs[chosen]
	}
	if next != nil {
		n := 0
		for n < len(next) && within(next[n]) {
			n++
		}
		switch {
		case n == len(next) && chosen == len(txs):
			res.open = info(open, n)
		case n > 0 && n < len(next):
			res.straddle = info(next, n)
		}
	}
	// Records read: up to the first one outside the cut.
	read := len(log)
	for i := range log {
		if !within(i) {
			read = i + 1
			break
		}
	}
	for i := 0; i < read; i++ {
		if clamped[i] {
			res.clamped++
		}
	}
	return res
}

// ---------------------------------------------------------------- the model against graphref

// TestReplayPropertyModelMatchesGraphref checks the model itself against
// graphref on generated cases: the state, the transactions in the cut, the
// records applied and skipped, the last lsn and ts, and the refusals.
// STRATA_THOROUGH=1 checks many more.
func TestReplayPropertyModelMatchesGraphref(t *testing.T) {
	shared := sharedDir(t)
	tool := filepath.Join(shared, "tools", "graphref.py")
	want := 6
	if os.Getenv(thoroughEnv) == "1" {
		want = 300
	}
	tmp := t.TempDir()
	done := 0
	for seed := uint64(1); done < want; seed++ {
		cs, err := newPgen(seed).cases(10)
		if err != nil {
			t.Fatal(err)
		}
		c := cs[seed%uint64(len(cs))]
		// graphref needs a tier, refuses an id defined in two tiers, and
		// judges whether --lsn is reached on the log it is given (the
		// model, as Replay's contract: on the log plus the state at K).
		if len(c.base) == 0 || len(c.log) == 0 && c.cut.hasLSN && c.cut.lsn > 0 || pmDuplicates(c.base) {
			continue
		}
		done++
		dir := filepath.Join(tmp, fmt.Sprint(seed))
		args, err := c.dump(dir, tool)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("python3", args...).CombinedOutput()
		m := pmReplay(c.base, c.log, c.cut)
		fail := func(format string, a ...any) {
			t.Errorf("seed %d (%s): "+format+"\ngraphref: python3 %s\n%s", append(append([]any{seed, c.cut}, a...), strings.Join(args, " "), out)...)
		}
		if err != nil || m.err != "" {
			if err == nil || m.err == "" {
				fail("graphref error %v, model error %q", err, m.err)
			}
			continue
		}
		if got := pmGraphrefCounts(string(out)); got != [3]int{m.txs, m.applied, m.skipped} {
			fail("graphref transactions/applied/skipped %v, model %v", got, [3]int{m.txs, m.applied, m.skipped})
		}
		if m.txs > 0 && !strings.Contains(string(out), fmt.Sprintf("up to lsn %d (ts %s)\n", m.lastLSN, m.lastTS)) {
			fail("model: last lsn %d, ts %s", m.lastLSN, m.lastTS)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "out", "*.jsonl"))
		var names []string
		for _, f := range files {
			names = append(names, strings.TrimSuffix(filepath.Base(f), ".jsonl"))
		}
		if strings.Join(names, ",") != strings.Join(m.state.names(), ",") {
			fail("graphref tiers %q, model %q", names, m.state.names())
			continue
		}
		for _, n := range names {
			got, err := os.ReadFile(filepath.Join(dir, "out", n+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			var exp []byte
			for _, r := range m.state.sorted(n) {
				exp = append(append(exp, r.canon...), '\n')
			}
			if !bytes.Equal(got, exp) {
				fail("tier %s:\ngraphref:\n%smodel:\n%s", n, got, exp)
			}
		}
	}
}

// pmDuplicates reports an id defined in two tiers.
func pmDuplicates(s pmState) bool {
	seen := map[pmKey]bool{}
	for _, t := range s {
		for k := range t {
			if seen[k] {
				return true
			}
			seen[k] = true
		}
	}
	return false
}

// pmGraphrefCounts reads graphref state's transactions in the cut, records
// applied and records skipped from its report.
func pmGraphrefCounts(out string) (c [3]int) {
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "cut: ") && strings.Contains(l, " transactions, up to lsn "):
			fmt.Sscanf(l, "cut: %d of", &c[0])
		case strings.HasPrefix(l, "  applied: "):
			fmt.Sscanf(l, "  applied: %d", &c[1])
		case strings.HasPrefix(l, "  skipped (lsn <= --after-lsn): "):
			fmt.Sscanf(l, "  skipped (lsn <= --after-lsn): %d", &c[2])
		}
	}
	return c
}
