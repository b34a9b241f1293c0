package graph

// LineParser parses single lines that the caller already holds (a
// mutation record's embedded graph record, say) with the Reader's exact
// rules, without a Reader's 256 KiB buffer. The zero value is ready; it is
// not safe for concurrent use. Parse returns "" or graphref's reason.
type LineParser struct{ r Reader }

// Parse parses one non-blank line of a state (tombstones are malformed).
func (p *LineParser) Parse(line []byte) (*Record, string) { return p.r.parse(trimEOL(line)) }

// UseSlabs has the parser hand out records from shared slabs (see arena),
// as a Reader does: for a caller that keeps few of its records for long (a
// replay), not one that keeps a record here and there.
func (p *LineParser) UseSlabs() { p.r.ext.mem.on = true }

// ParseStored reads the key of a canonical line that strata stored (a
// mutation record in a log segment), as NewStoredLineIterator does: a
// partial record, or false when the line's shape needs Parse.
func (p *LineParser) ParseStored(line []byte) (*Record, bool) { return p.r.parseKeys(line) }

// Full returns rec with every field set: rec itself unless it is partial
// (read by NewStoredLineIterator), else the record parsed from its
// canonical line, which must be canonical.
func (p *LineParser) Full(rec *Record) (*Record, error) {
	if !rec.partial {
		return rec, nil
	}
	full, reason := p.r.parseCanonical(rec.Canonical)
	if reason != "" {
		return nil, &SyntaxError{Tier: p.r.tier, Line: rec.Line, Reason: reason}
	}
	full.Line = rec.Line
	return full, nil
}
