// Package oplog is strata's mutation log: parsing and validating the JSON
// Lines records `oplog push` receives (SPEC section 5), storing them as sealed
// segments (docs/design.md section 10) and replaying them over graph tiers
// for point-in-time recovery.
//
// The reference semantics are ../shared/tools/graphref.py: which lines are
// well-formed, lsn continuity, ts clamping, transaction grouping, the cut and
// the replay (upserts, deletes, detach) follow it, and so do the error
// reasons.
package oplog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/strata-backup/strata/graph"
)

// Op is a record's operation.
type Op uint8

const (
	OpUpsert Op = 1
	OpDelete Op = 2
)

func (o Op) String() string {
	if o == OpUpsert {
		return "upsert"
	}
	return "delete"
}

// Tx is a record's transaction id. A string and an integer tx differ even
// when they read the same (5 and "5").
type Tx struct {
	Set bool   // the record has a tx
	Int bool   // V is the decimal text of an integer tx (any size)
	V   string // the string (decoded; WTF-8 for a lone surrogate) or the integer
}

// String returns the tx as JSON text (what graphref prints).
func (t Tx) String() string {
	if !t.Set {
		return "none"
	}
	if t.Int {
		return t.V
	}
	return string(graph.AppendJSONString(nil, t.V))
}

// Record is one mutation of the log.
type Record struct {
	LSN     uint64
	PrevLSN uint64
	HasPrev bool // the record carries prev_lsn
	// TS is the record's ts text and Time its exact value. A Validator sets
	// EffTS/Eff to the effective (clamped) ts; until then they equal TS/Time.
	TS    string
	Time  Time
	EffTS string
	Eff   Time
	Tx    Tx
	TxEnd bool
	Tier  string
	Op    Op
	// Rec is an upsert's graph record (canonical, values exact).
	Rec *graph.Record
	// Kind and ID name what a delete deletes.
	Kind graph.Kind
	ID   string
	// Line is the line number the record was read from (0 if unknown).
	Line int
}

// Error is a record or continuity problem: the line it is on and the reason,
// worded as graphref words it.
type Error struct {
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Reason
	}
	return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
}

// Reasons, as graphref's oplog_problem gives them.
const (
	reasonLSN    = `field "lsn" must be a positive integer`
	reasonTS     = `field "ts" must be an RFC 3339 time, got `
	reasonTx     = `field "tx" must be a string or an integer`
	reasonTxEnd  = `field "tx_end" must be true or false`
	reasonTier   = `field "tier" must be a tier name ([A-Za-z0-9][A-Za-z0-9._-]*)`
	reasonKind   = `delete needs "kind": "node" or "relationship"`
	reasonID     = `delete needs a non-empty string "id"`
	reasonOp     = `field "op" must be "upsert" or "delete"`
	reasonObject = "not a JSON object"
)

// ParseRecord parses one non-blank line of a mutation log strictly (SPEC
// section 5, graphref's rules). line is the line number errors name; the
// error is an *Error.
func ParseRecord(text []byte, line int) (*Record, error) {
	return parseLine(text, line, false)
}

// parseLine is ParseRecord; stored says that text comes from a segment
// strata wrote and authenticated, whose embedded record is a canonical line
// and can be read by its key (graph.LineParser.ParseStored): a replay only
// sorts and merges it.
func parseLine(text []byte, line int, stored bool) (*Record, error) {
	rec, reason := parseRecord(text, stored)
	if reason != "" {
		return nil, &Error{Line: line, Reason: reason}
	}
	rec.Line = line
	return rec, nil
}

// topFields splits a valid JSON object into its members' raw values.
func topFields(text []byte) (map[string]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(text))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, false
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, ok := tok.(string)
		if !ok {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		fields[key] = raw
	}
	return fields, true
}

func isIntLiteral(raw []byte) bool {
	s := raw
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compact returns raw JSON without insignificant whitespace (for messages).
func compact(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func compactOrNull(raw []byte) string {
	if raw == nil {
		return "null"
	}
	return compact(raw)
}

// Time is an exact instant: seconds since the epoch and the fractional
// digits (no trailing zeros), so any RFC 3339 precision compares exactly.
type Time struct {
	Sec  int64
	Frac string
}

// Compare returns -1, 0 or +1.
func (t Time) Compare(u Time) int {
	switch {
	case t.Sec < u.Sec:
		return -1
	case t.Sec > u.Sec:
		return 1
	}
	// Without trailing zeros, digit strings order as their fractions do.
	return strings.Compare(t.Frac, u.Frac)
}

func badTime(s string) error { return fmt.Errorf("not an RFC 3339 time: %q", s) }

// ParseTime parses an RFC 3339 time as graphref does:
// YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), T and Z in either case, a valid
// date, second 60 (leap) allowed, any offset.
func ParseTime(s string) (Time, error) {
	num := func(a, b int) (int, bool) {
		if b > len(s) {
			return 0, false
		}
		n := 0
		for i := a; i < b; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' && s[10] != 't' || s[13] != ':' || s[16] != ':' {
		return Time{}, badTime(s)
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	hh, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	ss, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return Time{}, badTime(s)
	}
	i := 19
	frac := ""
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return Time{}, badTime(s)
		}
		frac = strings.TrimRight(s[i+1:j], "0")
		i = j
	}
	var offset int64
	switch rest := s[i:]; {
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(i+1, i+3)
		om, ok2 := num(i+4, i+6)
		if !ok1 || !ok2 {
			return Time{}, badTime(s)
		}
		offset = int64(oh)*3600 + int64(om)*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return Time{}, badTime(s)
	}
	// Python's datetime: year 1..9999, a real date, hour < 24, minute < 60;
	// graphref maps second 60 to 59 + 1.
	leap := int64(0)
	if ss == 60 {
		ss, leap = 59, 1
	}
	if y < 1 || mo < 1 || mo > 12 || d < 1 || hh > 23 || mi > 59 || ss > 59 {
		return Time{}, badTime(s)
	}
	t := time.Date(y, time.Month(mo), d, hh, mi, ss, 0, time.UTC)
	if t.Day() != d {
		return Time{}, badTime(s)
	}
	return Time{Sec: t.Unix() + leap - offset, Frac: frac}, nil
}

// AppendJSON appends the record's JSON line (without a newline) as a
// segment stores it: lsn, prev_lsn, ts (the effective ts), tx, tx_end (only
// when true), tier, op, then record or kind and id.
func (r *Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"lsn":`...)
	b = strconv.AppendUint(b, r.LSN, 10)
	if r.HasPrev {
		b = append(b, `,"prev_lsn":`...)
		b = strconv.AppendUint(b, r.PrevLSN, 10)
	}
	b = append(b, `,"ts":`...)
	b = graph.AppendJSONString(b, r.EffTS)
	if r.Tx.Set {
		b = append(b, `,"tx":`...)
		if r.Tx.Int {
			b = append(b, r.Tx.V...)
		} else {
			b = graph.AppendJSONString(b, r.Tx.V)
		}
	}
	if r.TxEnd {
		b = append(b, `,"tx_end":true`...)
	}
	b = append(b, `,"tier":`...)
	b = graph.AppendJSONString(b, r.Tier)
	b = append(b, `,"op":"`...)
	b = append(b, r.Op.String()...)
	b = append(b, '"')
	if r.Op == OpUpsert {
		b = append(b, `,"record":`...)
		b = append(b, r.Rec.Canonical...)
	} else {
		b = append(b, `,"kind":"`...)
		b = append(b, r.Kind.String()...)
		b = append(b, `","id":`...)
		b = graph.AppendJSONString(b, r.ID)
	}
	return append(b, '}')
}

// Same reports whether a re-sent record equals a stored one, so that push
// can skip it (SPEC: a record equal to one already stored is skipped; a
// different record at an existing lsn is refused). Both records' ts are
// compared as effective ts: validate the re-sent record against the stored
// predecessor first. Graph records compare by their canonical lines (numbers
// as written: 1 and 1.0 differ here, see the package notes).
func Same(a, b *Record) bool {
	return bytes.Equal(a.AppendJSON(nil), b.AppendJSON(nil))
}
