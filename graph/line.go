package graph

// LineParser parses single lines that the caller already holds (a
// mutation record's embedded graph record, say) with the Reader's exact
// rules, without a Reader's 256 KiB buffer. The zero value is ready; it is
// not safe for concurrent use. Parse returns "" or graphref's reason.
type LineParser struct{ r Reader }

// Parse parses one non-blank line of a state (tombstones are malformed).
func (p *LineParser) Parse(line []byte) (*Record, string) { return p.r.parse(trimEOL(line)) }
