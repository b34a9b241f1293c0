package oplog

// The parser as it was before the fast scan (parse.go), kept verbatim as
// the reference the fast one must match exactly: same records, same
// reasons.

import (
	"bytes"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-backup/strata/graph"
)

func parseRecordRef(text []byte) (*Record, string) {
	if bytes.IndexByte(text, '\n') >= 0 {
		return nil, "invalid JSON (a line break inside the line)"
	}
	// The whole line must be valid JSON by graphref's rules (UTF-8, no
	// duplicate keys anywhere, no NaN, bounded depth): graph's reader
	// checks exactly that before it looks at the record fields.
	if reason := jsonProblemRef(text); reason != "" {
		return nil, reason
	}
	fields, ok := topFields(text)
	if !ok {
		return nil, reasonObject
	}
	r := &Record{}
	raw, ok := fields["lsn"]
	if !ok || !isIntLiteral(raw) || raw[0] == '-' {
		return nil, reasonLSN
	}
	lsn, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || lsn == 0 {
		return nil, reasonLSN
	}
	r.LSN = lsn
	if raw, ok := fields["prev_lsn"]; ok {
		bad := `field "prev_lsn" must be an integer from 0 to lsn - 1, got ` + compact(raw)
		if !isIntLiteral(raw) || raw[0] == '-' && string(raw) != "-0" {
			return nil, bad
		}
		p, err := strconv.ParseUint(strings.TrimPrefix(string(raw), "-"), 10, 64)
		if err != nil || p >= lsn {
			return nil, bad
		}
		r.PrevLSN, r.HasPrev = p, true
	}
	raw = fields["ts"]
	ts, isStr := graph.DecodeJSONString(raw)
	if !isStr {
		return nil, reasonTS + compactOrNull(raw)
	}
	t, err := ParseTime(ts)
	if err != nil {
		return nil, reasonTS + compactOrNull(raw)
	}
	r.TS, r.Time, r.EffTS, r.Eff = ts, t, ts, t
	if raw, ok := fields["tx"]; ok {
		switch {
		case isIntLiteral(raw):
			v := string(raw)
			if v == "-0" {
				v = "0"
			}
			r.Tx = Tx{Set: true, Int: true, V: v}
		default:
			s, isStr := graph.DecodeJSONString(raw)
			if !isStr {
				return nil, reasonTx
			}
			r.Tx = Tx{Set: true, V: s}
		}
	}
	if raw, ok := fields["tx_end"]; ok {
		switch string(raw) {
		case "true":
			r.TxEnd = true
		case "false":
		default:
			return nil, reasonTxEnd
		}
	}
	tier, isStr := graph.DecodeJSONString(fields["tier"])
	if !isStr || !graph.ValidTierName(tier) {
		return nil, reasonTier
	}
	r.Tier = tier
	op, _ := graph.DecodeJSONString(fields["op"])
	switch op {
	case "upsert":
		r.Op = OpUpsert
		raw, ok := fields["record"]
		if !ok {
			return nil, "record: " + reasonObject
		}
		lp := lineParsersRef.Get().(*graph.LineParser)
		g, reason := lp.Parse(raw)
		lineParsersRef.Put(lp)
		if reason != "" {
			return nil, "record: " + reason
		}
		r.Rec = g
	case "delete":
		r.Op = OpDelete
		kind, _ := graph.DecodeJSONString(fields["kind"])
		switch kind {
		case "node":
			r.Kind = graph.KindNode
		case "relationship":
			r.Kind = graph.KindRelationship
		default:
			return nil, reasonKind
		}
		id, isStr := graph.DecodeJSONString(fields["id"])
		if !isStr || id == "" {
			return nil, reasonID
		}
		r.ID = id
	default:
		return nil, reasonOp
	}
	return r, ""
}

// jsonProblem returns "" if text is valid JSON by graphref's rules, else the
// reason. It lets graph's reader parse the line as if it were a graph record:
// its reasons for invalid JSON come before any record rule.
func jsonProblemRef(text []byte) string {
	lp := lineParsersRef.Get().(*graph.LineParser)
	_, reason := lp.Parse(text)
	lineParsersRef.Put(lp)
	for _, p := range []string{"invalid JSON", "not UTF-8", "line longer than"} {
		if strings.HasPrefix(reason, p) {
			return reason
		}
	}
	return ""
}

// lineParsersRef hold graph line parsers (each keeps its scratch buffers).
var lineParsersRef = sync.Pool{New: func() any { return new(graph.LineParser) }}
