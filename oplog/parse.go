package oplog

import (
	"bytes"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/strata-backup/strata/graph"
)

// Parsing a mutation line. graphref's rules make a line's reason depend on
// the whole line: it must first be valid JSON as graph's reader judges it
// (UTF-8, no duplicate key at any depth, no NaN, numbers in range, bounded
// nesting; the column of the first problem is part of the reason), then an
// object, then its fields are checked in a fixed order.
//
// The reference implementation of those rules is parseSlow: graph's line
// parser over the whole line for its JSON reasons, encoding/json for the
// members, and the parser again for the embedded record. It is exact but
// parses every line three times. scan is the fast path: one hand-written
// pass over the envelope that accepts only what it can vouch for, namely a
// line that is valid JSON by the rules above, and hands the embedded
// record (and any other object or array value) to graph's parser once.
// Whenever it meets anything else (any syntax problem, an escaped key, a
// duplicate key, an exponent, nesting near the limit, ...) it gives up and
// parseSlow decides, so every reason stays exactly what it was. Both feed
// the same field checks (interpret).

// envelope holds the raw JSON text of the members of a mutation line that
// the field checks read; nil means the member is absent. A present value is
// never empty.
type envelope struct {
	lsn, prevLSN, ts, tx, txEnd, tier, op, record, kind, id []byte
}

// recParser is one goroutine's parsing state (pooled).
type recParser struct {
	lp graph.LineParser
	// The embedded record as the fast scan parsed it.
	rec       *graph.Record
	recReason string
	// unknown holds the keys of members the field checks ignore, to catch
	// duplicates among them.
	unknown [][]byte
	// tiers interns tier names: a log has few.
	tiers map[string]string
	// lastTx is the last string tx read (see interpret).
	lastTx string
	// stored: the line comes from a stored segment, read by a replay,
	// which keeps few of its records for long: they come from slabs
	// (recs, and lpStored's; see graph's arena for the trade).
	stored   bool
	recs     []Record
	lpStored graph.LineParser
}

func (p *recParser) newRecord() *Record {
	if !p.stored {
		return &Record{}
	}
	if len(p.recs) == 0 {
		p.recs = make([]Record, 128)
	}
	r := &p.recs[0]
	p.recs = p.recs[1:]
	return r
}

var recParsers = sync.Pool{New: func() any {
	p := &recParser{tiers: map[string]string{}}
	p.lpStored.UseSlabs()
	return p
}}

func parseRecord(text []byte, stored bool) (*Record, string) {
	if bytes.IndexByte(text, '\n') >= 0 {
		return nil, "invalid JSON (a line break inside the line)"
	}
	p := recParsers.Get().(*recParser)
	defer recParsers.Put(p)
	p.stored = stored
	var f envelope
	ok := stored && p.scanStored(text, &f)
	if !ok {
		f, p.rec = envelope{}, nil
		ok = p.scan(text, &f)
	}
	rec, reason := p.rec, p.recReason
	// What stays pooled must not hold on to the line.
	clear(p.unknown)
	p.unknown, p.rec, p.recReason = p.unknown[:0], nil, ""
	if ok {
		return p.interpret(&f, func([]byte) (*graph.Record, string) { return rec, reason })
	}
	return p.parseSlow(text)
}

// parseSlow is the reference parse (see above).
func (p *recParser) parseSlow(text []byte) (*Record, string) {
	// The whole line must be valid JSON by graphref's rules (UTF-8, no
	// duplicate keys anywhere, no NaN, bounded depth): graph's reader
	// checks exactly that before it looks at the record fields.
	if reason := p.jsonProblem(text); reason != "" {
		return nil, reason
	}
	fields, ok := topFields(text)
	if !ok {
		return nil, reasonObject
	}
	f := envelope{}
	for k, v := range fields {
		if dst := f.member(k); dst != nil {
			*dst = v
		}
	}
	return p.interpret(&f, p.lp.Parse)
}

// jsonProblem returns "" if text is valid JSON by graphref's rules, else the
// reason. It lets graph's reader parse the line as if it were a graph record:
// its reasons for invalid JSON come before any record rule.
func (p *recParser) jsonProblem(text []byte) string {
	if _, reason := p.lp.Parse(text); isJSONReason(reason) {
		return reason
	}
	return ""
}

// isJSONReason: graph's parser found the text itself malformed (rather than
// a well-formed value that is no graph record).
func isJSONReason(reason string) bool {
	return strings.HasPrefix(reason, "invalid JSON") || strings.HasPrefix(reason, "not UTF-8") ||
		strings.HasPrefix(reason, "line longer than")
}

// member returns where the value of the member named key goes, nil for a
// member the field checks ignore.
func (f *envelope) member(key string) *[]byte {
	switch key {
	case "lsn":
		return &f.lsn
	case "prev_lsn":
		return &f.prevLSN
	case "ts":
		return &f.ts
	case "tx":
		return &f.tx
	case "tx_end":
		return &f.txEnd
	case "tier":
		return &f.tier
	case "op":
		return &f.op
	case "record":
		return &f.record
	case "kind":
		return &f.kind
	case "id":
		return &f.id
	}
	return nil
}

// interpret applies graphref's field rules, in graphref's order, to a line
// already known to be valid JSON. parseRec parses the embedded record.
func (p *recParser) interpret(f *envelope, parseRec func([]byte) (*graph.Record, string)) (*Record, string) {
	r := p.newRecord()
	raw := f.lsn
	if raw == nil || !isIntLiteral(raw) || raw[0] == '-' {
		return nil, reasonLSN
	}
	lsn, ok := parseDigits(raw)
	if !ok || lsn == 0 {
		return nil, reasonLSN
	}
	r.LSN = lsn
	if raw := f.prevLSN; raw != nil {
		if !isIntLiteral(raw) || raw[0] == '-' && string(raw) != "-0" {
			return nil, reasonPrevLSN(raw)
		}
		p, ok := parseDigits(bytes.TrimPrefix(raw, []byte("-")))
		if !ok || p >= lsn {
			return nil, reasonPrevLSN(raw)
		}
		r.PrevLSN, r.HasPrev = p, true
	}
	raw = f.ts
	tsb, isStr := jsonString(raw)
	if !isStr {
		return nil, reasonTS + compactOrNull(raw)
	}
	ts := string(tsb)
	t, err := ParseTime(ts)
	if err != nil {
		return nil, reasonTS + compactOrNull(raw)
	}
	r.TS, r.Time, r.EffTS, r.Eff = ts, t, ts, t
	if raw := f.tx; raw != nil {
		switch {
		case isIntLiteral(raw):
			v := string(raw)
			if v == "-0" {
				v = "0"
			}
			r.Tx = Tx{Set: true, Int: true, V: v}
		default:
			s, isStr := jsonString(raw)
			if !isStr {
				return nil, reasonTx
			}
			// A transaction's records are consecutive: reuse the
			// previous line's string rather than allocate one a line.
			if string(s) != p.lastTx {
				p.lastTx = string(s)
			}
			r.Tx = Tx{Set: true, V: p.lastTx}
		}
	}
	if raw := f.txEnd; raw != nil {
		switch string(raw) {
		case "true":
			r.TxEnd = true
		case "false":
		default:
			return nil, reasonTxEnd
		}
	}
	tier, isStr := jsonString(f.tier)
	if !isStr {
		return nil, reasonTier
	}
	if r.Tier = p.tiers[string(tier)]; r.Tier == "" {
		if !graph.ValidTierName(string(tier)) {
			return nil, reasonTier
		}
		r.Tier = string(tier)
		if len(p.tiers) < 256 {
			p.tiers[r.Tier] = r.Tier
		}
	}
	op, _ := jsonString(f.op)
	switch string(op) {
	case "upsert":
		r.Op = OpUpsert
		if f.record == nil {
			return nil, "record: " + reasonObject
		}
		g, reason := parseRec(f.record)
		if reason != "" {
			return nil, "record: " + reason
		}
		r.Rec = g
	case "delete":
		r.Op = OpDelete
		kind, _ := jsonString(f.kind)
		switch string(kind) {
		case "node":
			r.Kind = graph.KindNode
		case "relationship":
			r.Kind = graph.KindRelationship
		default:
			return nil, reasonKind
		}
		id, isStr := jsonString(f.id)
		if !isStr || len(id) == 0 {
			return nil, reasonID
		}
		r.ID = string(id)
	default:
		return nil, reasonOp
	}
	return r, ""
}

func reasonPrevLSN(raw []byte) string {
	return `field "prev_lsn" must be an integer from 0 to lsn - 1, got ` + compact(raw)
}

// parseDigits is strconv.ParseUint(s, 10, 64) for a string of digits.
func parseDigits(s []byte) (uint64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// jsonString decodes raw if it is one valid JSON string literal, as
// graph.DecodeJSONString does (raw comes from a line already checked to
// be valid JSON). The result aliases raw when the string has no escapes.
func jsonString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	body := raw[1 : len(raw)-1]
	if raw[len(raw)-1] == '"' && bytes.IndexByte(body, '\\') < 0 && bytes.IndexByte(body, '"') < 0 {
		return body, true
	}
	s, ok := graph.DecodeJSONString(raw)
	return []byte(s), ok
}

// The fast scan.

// strStop marks the bytes that end a run of plain string content.
var strStop = func() (t [256]bool) {
	for b := 0; b < 0x20; b++ {
		t[b] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// maxFastDepth: a value whose open brackets reach this many is left to the
// slow path, which knows the exact nesting limit (graph's 1000, counted
// from the line's outermost object).
const maxFastDepth = 999

// scan parses text into f if it can vouch that text is a valid JSON object
// by graphref's rules; the embedded record's parse is left in p.rec and
// p.recReason. false: the slow path must decide.
func (p *recParser) scan(text []byte, f *envelope) bool {
	if len(text) > MaxLineBytes || !utf8.Valid(text) {
		return false
	}
	p.unknown = p.unknown[:0]
	p.rec, p.recReason = nil, ""
	n := len(text)
	i := skipWS(text, 0)
	if i >= n || text[i] != '{' {
		return false
	}
	i = skipWS(text, i+1)
	if i < n && text[i] == '}' {
		return skipWS(text, i+1) == n
	}
	for {
		// The key: a string without escapes.
		if i >= n || text[i] != '"' {
			return false
		}
		j, esc := scanString(text, i)
		if j < 0 || esc {
			return false
		}
		key := text[i+1 : j-1]
		i = skipWS(text, j)
		if i >= n || text[i] != ':' {
			return false
		}
		i = skipWS(text, i+1)
		if i >= n {
			return false
		}
		dst := f.member(string(key))
		if dst != nil {
			if *dst != nil {
				return false // a duplicate key
			}
		} else {
			for _, k := range p.unknown {
				if bytes.Equal(k, key) {
					return false
				}
			}
			p.unknown = append(p.unknown, key)
		}
		var end int
		if dst == &f.record {
			end = p.scanRecord(text, i)
		} else {
			end = p.scanValue(text, i)
		}
		if end < 0 {
			return false
		}
		if dst != nil {
			*dst = text[i:end]
		}
		i = skipWS(text, end)
		if i >= n {
			return false
		}
		if text[i] == '}' {
			return skipWS(text, i+1) == n
		}
		if text[i] != ',' {
			return false
		}
		i = skipWS(text, i+1)
	}
}

// scanRecord scans the embedded record's value at text[i:] and parses it,
// once. It returns the end of the value, -1 to give up.
func (p *recParser) scanRecord(text []byte, i int) int {
	if c := text[i]; c != '{' && c != '[' {
		end := p.scanValue(text, i)
		if end >= 0 {
			p.rec, p.recReason = p.lp.Parse(text[i:end])
		}
		return end
	}
	// Usually the record is the last member: try the rest of the line up
	// to the envelope's closing brace. If that is one valid JSON value, it
	// is the record's (a value that parses whole cannot stop early).
	last := len(text) - 1
	for last > i && isWS(text[last]) {
		last--
	}
	if text[last] == '}' {
		v := text[i:last]
		for len(v) > 0 && isWS(v[len(v)-1]) {
			v = v[:len(v)-1]
		}
		if len(v) > 0 {
			g, reason := p.lp.Parse(v)
			if !isJSONReason(reason) {
				if tooDeep(v) {
					return -1
				}
				p.rec, p.recReason = g, reason
				return i + len(v)
			}
		}
	}
	end := skipComposite(text, i)
	if end < 0 {
		return -1
	}
	v := text[i:end]
	g, reason := p.lp.Parse(v)
	if isJSONReason(reason) || tooDeep(v) {
		return -1
	}
	p.rec, p.recReason = g, reason
	return end
}

// scanValue checks the JSON value at text[i:] and returns its end, or -1 to
// give up. Objects and arrays are checked by graph's parser.
func (p *recParser) scanValue(text []byte, i int) int {
	switch c := text[i]; {
	case c == '"':
		end, _ := scanString(text, i)
		return end
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(text, i)
	case c == 't':
		return scanLiteral(text, i, "true")
	case c == 'f':
		return scanLiteral(text, i, "false")
	case c == 'n':
		return scanLiteral(text, i, "null")
	case c == '{' || c == '[':
		end := skipComposite(text, i)
		if end < 0 {
			return -1
		}
		v := text[i:end]
		if _, reason := p.lp.Parse(v); isJSONReason(reason) || tooDeep(v) {
			return -1
		}
		return end
	}
	return -1
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// skipWS skips JSON whitespace (what graph's parser skips).
func skipWS(text []byte, i int) int {
	for i < len(text) && isWS(text[i]) {
		i++
	}
	return i
}

// scanString checks the string literal at text[i] ('"') and returns the
// offset after its closing quote (-1 if it is not valid) and whether it has
// escapes.
func scanString(text []byte, i int) (int, bool) {
	esc := false
	for i++; i < len(text); {
		c := text[i]
		if !strStop[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1, esc
		case c < 0x20:
			return -1, esc
		}
		// A backslash.
		esc = true
		if i+1 >= len(text) {
			return -1, esc
		}
		switch text[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(text) {
				return -1, esc
			}
			for _, h := range text[i+2 : i+6] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return -1, esc
				}
			}
			i += 6
		default:
			return -1, esc
		}
	}
	return -1, esc
}

// scanNumber checks the number at text[i] and returns its end, or -1 for
// anything but plain integers and decimals whose canonical form graph's
// parser is sure to accept: an exponent, an overlong integer, a malformed
// number.
func scanNumber(text []byte, i int) int {
	n := len(text)
	if text[i] == '-' {
		i++
	}
	start := i
	switch {
	case i < n && text[i] == '0':
		i++
	case i < n && text[i] >= '1' && text[i] <= '9':
		for i < n && text[i] >= '0' && text[i] <= '9' {
			i++
		}
		if i-start > 4000 {
			return -1 // near CPython's limit on int digits
		}
	default:
		return -1
	}
	if i < n && text[i] == '.' {
		i++
		j := i
		for i < n && text[i] >= '0' && text[i] <= '9' {
			i++
		}
		if i == j {
			return -1
		}
	}
	if i < n && (text[i] == 'e' || text[i] == 'E') {
		return -1
	}
	return i
}

func scanLiteral(text []byte, i int, lit string) int {
	if len(text)-i < len(lit) || string(text[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipComposite returns the end of the object or array at text[i] by its
// brackets and strings alone, -1 if it has none. It does not check the
// value.
func skipComposite(text []byte, i int) int {
	depth := 0
	for ; i < len(text); i++ {
		switch text[i] {
		case '"':
			j, _ := scanString(text, i)
			if j < 0 {
				return -1
			}
			i = j - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// tooDeep: v might nest deep enough that, one level down in the line, it
// passes graph's limit.
func tooDeep(v []byte) bool {
	if len(v) < 2*maxFastDepth {
		return false
	}
	return bytes.Count(v, []byte("{"))+bytes.Count(v, []byte("[")) >= maxFastDepth
}
