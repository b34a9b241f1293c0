package graph

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Reader reads graph JSON Lines and returns each record with its canonical
// line. It holds one line in memory at a time.
type Reader struct {
	br    *bufio.Reader
	tier  string
	line  int
	long  []byte // a line longer than the bufio buffer
	canon canonicalizer
	ext   extractor
	// tombstones (a delta layer) makes tombstone lines tombstones and
	// accepts detach lines, which are otherwise malformed (an unknown
	// "type"); strict requires every line to be canonical
	// (NewLineIterator); keysOnly reads a stored stream's keys
	// (NewStoredLineIterator).
	tombstones, strict, keysOnly bool
	// borrow (NewStoredLineIterator with Borrowed): a record parsed by
	// its keys is cur, reused, and its Canonical is the line in the
	// bufio buffer; both are valid until the next Next call.
	borrow bool
	cur    Record
	err    error // sticky: a read error ends the stream
}

// NewReader returns a Reader of r; tier names the tier in errors.
func NewReader(r io.Reader, tier string) *Reader {
	rd := &Reader{br: bufio.NewReaderSize(r, 256<<10), tier: tier}
	// A stream's records come from slabs (see arena); a LineParser's
	// zero Reader allocates each on its own.
	rd.ext.mem.on = true
	return rd
}

// Line returns the number of the line last read (1-based, blank lines
// counted), the line of the record or error Next last returned.
func (r *Reader) Line() int { return r.line }

// Next returns the next record, io.EOF after the last one, or a
// *SyntaxError for a malformed line. After a SyntaxError the Reader can go
// on with the next line (a checker reports every malformed line); after any
// other error it returns that error again.
func (r *Reader) Next() (*Record, error) {
	for {
		if r.err != nil {
			return nil, r.err
		}
		line, err := r.readLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("read tier %s: %w", r.tier, err)
			}
			r.err = err
			return nil, err
		}
		r.line++
		raw := line
		line = trimEOL(line)
		if r.strict {
			// A canonical stream is exactly what WriteLines writes.
			if len(raw)-len(line) > 1 || len(raw) > len(line) && raw[len(line)] != '\n' {
				return nil, &SyntaxError{Tier: r.tier, Line: r.line, Reason: "line ending is not a single \\n"}
			}
			if len(line) == 0 {
				return nil, &SyntaxError{Tier: r.tier, Line: r.line, Reason: "blank line"}
			}
		} else if isBlank(line) {
			continue
		}
		if r.keysOnly {
			if rec, ok := r.parseKeys(line); ok {
				rec.Line = r.line
				return rec, nil
			}
		}
		var rec *Record
		var reason string
		if r.strict {
			rec, reason = r.parseCanonical(line)
		} else {
			rec, reason = r.parse(line)
		}
		if reason != "" {
			return nil, &SyntaxError{Tier: r.tier, Line: r.line, Reason: reason}
		}
		rec.Line = r.line
		return rec, nil
	}
}

// parse turns one non-blank line into a record, or gives graphref's reason
// why it is malformed. Like graphref, the UTF-8 check comes first, then JSON,
// then the record rules.
func (r *Reader) parse(line []byte) (*Record, string) {
	if len(line) > maxLine {
		return nil, "line longer than " + strconv.Itoa(maxLine) + " bytes"
	}
	if !utf8.Valid(line) {
		return nil, notUTF8(line)
	}
	// Most lines are in one of the shapes APOC writes, which the fast
	// path takes; it leaves everything else, errors included, to
	// parseGeneral.
	if rec, ok := r.parseFast(line); ok {
		return rec, ""
	}
	return r.parseGeneral(line)
}

// parseCanonical is parse for a line that must be canonical: a stored
// stream's (NewLineIterator, LineParser.Full).
func (r *Reader) parseCanonical(line []byte) (*Record, string) {
	rec, reason := r.parse(line)
	if reason == "" && !bytes.Equal(rec.Canonical, line) {
		return nil, "not in canonical form"
	}
	return rec, reason
}

// parseGeneral is parse for any valid UTF-8 line: canonicalise, then check
// the record rules on the canonical members.
func (r *Reader) parseGeneral(line []byte) (*Record, string) {
	c := &r.canon
	if !c.canonicalize(line) {
		return nil, "invalid JSON (" + c.reason + ")"
	}
	rec, reason := r.ext.record(c, r.tombstones)
	if reason != "" {
		return nil, reason
	}
	rec.Canonical = c.appendTo(r.ext.mem.bytes(len(c.out)))
	return rec, ""
}

// readLine returns the next line including its '\n' (if any); the result is
// valid until the next call. Lines end at '\n' only, as graphref's binary
// line iteration does.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.br.ReadSlice('\n')
			// Beyond maxLine the line is rejected anyway (parse): keep
			// only its beginning, so that memory stays bounded.
			if len(r.long) <= maxLine {
				r.long = append(r.long, line...)
			}
		}
		line = r.long
		if cap(r.long) > 16<<20 {
			r.long = nil // don't keep a huge buffer after one huge line
		}
	}
	if err != nil && (!errors.Is(err, io.EOF) || len(line) == 0) {
		return nil, err
	}
	return line, nil
}

// trimEOL strips trailing '\r' and '\n' (Python's rstrip("\r\n")).
func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// isBlank is graphref's text.strip() == "": every character is whitespace
// in Python's sense (str.isspace), which includes \v, \f, \x1c..\x1f, \x85,
// NBSP and the Unicode spaces. A line that is not UTF-8 is not blank.
func isBlank(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch c {
			case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f:
				i++
				continue
			}
			return false
		}
		ru, n := utf8.DecodeRune(b[i:])
		if ru == utf8.RuneError || !pyIsSpace(ru) {
			return false
		}
		i += n
	}
	return true
}

// pyIsSpace is Python's str.isspace for non-ASCII code points: bidirectional
// class WS, B or S, or category Zs. U+180E is no longer a space in Unicode
// 6.3+, which both Go and Python 3.11 follow.
func pyIsSpace(r rune) bool {
	switch r {
	case 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A || unicode.Is(unicode.Zs, r)
}

// notUTF8 words the reason for a line that is not UTF-8, naming the column
// of the first bad byte.
func notUTF8(b []byte) string {
	for i := 0; i < len(b); {
		ru, n := utf8.DecodeRune(b[i:])
		if ru == utf8.RuneError && n <= 1 {
			return "not UTF-8 (invalid byte at column " + strconv.Itoa(i+1) + ")"
		}
		i += n
	}
	return "not UTF-8"
}
