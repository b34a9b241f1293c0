package oplog

import "bytes"

// scanStored splits a stored segment's line into its members when it is
// exactly what Record.AppendJSON writes:
//
//	{"lsn":N[,"prev_lsn":N],"ts":"..."[,"tx":"..."|N][,"tx_end":true],"tier":"...",
//	 "op":"upsert","record":{canonical record}}
//	... "op":"delete","kind":"node"|"relationship","id":"..."}
//
// and reads the embedded record by its key (p.rec). A segment is
// authenticated and strata wrote it, so the JSON checks of scan have
// nothing to find; interpret still applies every field rule. false: the
// line has another shape, and scan decides.
func (p *recParser) scanStored(text []byte, f *envelope) bool {
	s := storedScanner{b: text}
	if !s.lit(`{"lsn":`) {
		return false
	}
	f.lsn = s.number()
	if s.lit(`,"prev_lsn":`) {
		f.prevLSN = s.number()
	}
	if !s.lit(`,"ts":`) {
		return false
	}
	f.ts = s.str()
	if s.lit(`,"tx":`) {
		if s.peek('"') {
			f.tx = s.str()
		} else {
			f.tx = s.number()
		}
	}
	if s.lit(`,"tx_end":true`) {
		f.txEnd = litTrue
	}
	if !s.lit(`,"tier":`) {
		return false
	}
	f.tier = s.str()
	switch {
	case s.lit(`,"op":"upsert","record":`):
		f.op = litUpsert
		end := len(text) - 1
		if s.bad || s.i >= end || text[end] != '}' {
			return false
		}
		rec, ok := p.lpStored.ParseStored(text[s.i:end])
		if !ok {
			return false
		}
		f.record, p.rec = text[s.i:end], rec
		return true
	case s.lit(`,"op":"delete","kind":`):
		f.op = litDelete
		f.kind = s.str()
		if !s.lit(`,"id":`) {
			return false
		}
		f.id = s.str()
		return s.lit(`}`) && !s.bad && s.i == len(text)
	}
	return false
}

// The member texts scanStored knows without reading them (shared, read
// only: interpret does not modify an envelope).
var (
	litTrue   = []byte("true")
	litUpsert = []byte(`"upsert"`)
	litDelete = []byte(`"delete"`)
)

// storedScanner reads the fixed shape of a stored line; bad records any
// miss, after which every read returns nothing.
type storedScanner struct {
	b   []byte
	i   int
	bad bool
}

func (s *storedScanner) lit(l string) bool {
	if s.bad || !bytes.HasPrefix(s.b[s.i:], []byte(l)) {
		return false
	}
	s.i += len(l)
	return true
}

func (s *storedScanner) peek(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// number reads a number literal (interpret checks that lsn, prev_lsn and
// an integer tx are integers).
func (s *storedScanner) number() []byte {
	if s.bad || s.i >= len(s.b) {
		s.bad = true
		return nil
	}
	return s.take(scanNumber(s.b, s.i))
}

// str reads a string, quotes included (the raw value text the envelope
// holds; interpret decodes it).
func (s *storedScanner) str() []byte {
	if s.bad || !s.peek('"') {
		s.bad = true
		return nil
	}
	j, _ := scanString(s.b, s.i)
	return s.take(j)
}

// take returns the value up to end (-1: none) and moves past it.
func (s *storedScanner) take(end int) []byte {
	if end < 0 {
		s.bad = true
		return nil
	}
	v := s.b[s.i:end]
	s.i = end
	return v
}
