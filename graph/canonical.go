package graph

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strconv"
)

// This file is a hand-rolled JSON tokenizer that writes the canonical form of
// a line in the same pass it validates it. Canonical means: what
// graphref.py's canonical_line writes for the parsed value, byte for byte:
//
//   - object keys sorted by code point (json.dumps(sort_keys=True)), compact
//     separators, no whitespace;
//   - strings as json.dumps(ensure_ascii=False) writes them: UTF-8 kept, only
//     '"', '\\' and control characters escaped (\n \r \t \b \f, else \u00xx);
//     a string holding a lone surrogate (only reachable through a \uD8xx
//     escape) cannot be UTF-8, so graphref writes that one string fully
//     ASCII-escaped (encode_basestring_ascii) and so do we;
//   - integers as Python's str(int(literal)): the literal, except that "-0"
//     becomes "0"; more than 4300 digits is an error (CPython's int limit);
//   - other numbers as str(decimal.Decimal(literal)), which keeps "1.50"
//     but writes "1e400" as "1E+400" and "0.0000001" as "1E-7" (see
//     appendDecimal).
//
// Numbers never pass through float64, so every value round-trips exactly.
//
// Decoded strings (object keys, ids) are held as WTF-8: UTF-8, plus lone
// surrogates encoded as three bytes (ED A0..BF xx). Byte order of WTF-8 equals
// code-point order, which is the order Python sorts str by, and it is also
// what graphref's sort key (encode("utf-8", "surrogatepass")) produces.

// maxDepth bounds nesting. CPython's decoder raises RecursionError at about
// 1000 levels (graphref then crashes rather than reporting a reason), so
// nothing deeper is valid input for the oracle either; the bound also keeps
// this recursive parser's stack small on hostile input.
const maxDepth = 1000

// member is one key/value pair of the object being canonicalised, with its
// position in the output so that members can be reordered after the fact.
//
// It holds no pointers, so that sorting members costs no GC write barriers:
// the decoded key is keyLen bytes at keyOff in the input line or, for a key
// with escapes (keyOff < 0), at ^keyOff in canonicalizer.keys.
// Offsets are int32 (lines are limited to maxLine) to keep sorting cheap.
type member struct {
	prefix         uint64 // the key's first 8 bytes, big-endian, zero-padded
	keyOff, keyLen int32
	start          int32 // offset in out of the member's key
	val            int32 // offset in out of the member's value
	end            int32 // end offset in out of the member's value
}

// maxLine is the longest line accepted: offsets in a line must fit member's
// int32 fields, and the canonical form can be up to three times as long as
// the input (a string with a lone surrogate is written ASCII-escaped, so "é"
// becomes "\u00e9").
const maxLine = 256 << 20

// key returns the decoded key of m (WTF-8).
func (c *canonicalizer) key(m *member) []byte {
	if m.keyOff >= 0 {
		return c.in[m.keyOff : m.keyOff+m.keyLen]
	}
	o := ^m.keyOff
	return c.keys[o : o+m.keyLen]
}

// compareKeys orders members by decoded key. The prefixes usually decide;
// equal prefixes (a zero byte pads as well as ends) need the full keys.
func (c *canonicalizer) compareKeys(a, b *member) int {
	if a.prefix != b.prefix {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	}
	return bytes.Compare(c.key(a), c.key(b))
}

// keyPrefix packs the first 8 bytes of k big-endian, so that comparing
// prefixes as integers compares the keys' beginnings bytewise.
func keyPrefix(k []byte) uint64 { return bytesPrefix(k) }

// canonicalizer holds the scratch buffers reused from line to line, so that a
// steady stream of lines allocates nothing here.
type canonicalizer struct {
	in    []byte
	pos   int
	out   []byte
	spans []member // stack of members of the open objects
	keys  []byte   // arena for keys that had escapes
	dec   []byte   // scratch for decoding an escaped string
	tmp   []byte   // scratch for reordering object members
	num   []byte   // scratch for decimal digits
	depth int
	// outer is the depth around the outermost object: 0, or 1 when the
	// fast path (parse_fast.go) parses only a record's "properties".
	outer  int
	reason string // why the last parse failed
	// topSorted: the outermost object's members were already in order, so
	// out is canonical as it stands.
	topSorted bool
}

// canonicalize parses line (at most maxLine bytes) as one JSON value. Afterwards appendTo writes its
// canonical form; if the value is an object, c.spans holds its members
// sorted by key, each with the offsets of its canonical text in c.out (which
// holds the members in input order).
func (c *canonicalizer) canonicalize(line []byte) bool {
	c.in, c.pos = line, 0
	c.out, c.spans, c.keys = c.out[:0], c.spans[:0], c.keys[:0]
	c.depth, c.outer, c.reason, c.topSorted = 0, 0, "", true
	if !c.value() {
		return false
	}
	c.skipWS()
	if c.pos != len(c.in) {
		return c.fail("extra data")
	}
	return true
}

// fail records the reason with the 1-based column (of the line) it refers to.
func (c *canonicalizer) fail(what string) bool {
	c.reason = what + " at column " + strconv.Itoa(c.pos+1)
	return false
}

func (c *canonicalizer) skipWS() {
	// Compact input (the usual case) has no whitespace at all.
	if c.pos < len(c.in) && c.in[c.pos] > ' ' {
		return
	}
	c.skipWSSlow()
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (c *canonicalizer) peek() byte {
	if c.pos < len(c.in) {
		if b := c.in[c.pos]; b > ' ' {
			return b
		}
		c.skipWSSlow()
		if c.pos < len(c.in) {
			return c.in[c.pos]
		}
	}
	return 0
}

func (c *canonicalizer) skipWSSlow() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\r', '\n':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value() bool {
	switch b := c.peek(); {
	case b == '"':
		return c.str()
	case b == '{':
		return c.object()
	case b == '[':
		return c.array()
	case b == '-' || b >= '0' && b <= '9':
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == 'N' && bytes.HasPrefix(c.in[c.pos:], []byte("NaN")):
		return c.fail("NaN is not a JSON number")
	case b == 'I' && bytes.HasPrefix(c.in[c.pos:], []byte("Infinity")):
		return c.fail("Infinity is not a JSON number")
	}
	return c.fail("expecting value")
}

func (c *canonicalizer) literal(lit string) bool {
	if !bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
		return c.fail("expecting value")
	}
	c.out = append(c.out, lit...)
	c.pos += len(lit)
	return true
}

func (c *canonicalizer) enter() bool {
	c.depth++
	if c.depth > maxDepth {
		return c.fail("nesting deeper than " + strconv.Itoa(maxDepth))
	}
	return true
}

func (c *canonicalizer) array() bool {
	if !c.enter() {
		return false
	}
	c.pos++
	c.out = append(c.out, '[')
	if c.peek() == ']' {
		c.pos++
		c.out = append(c.out, ']')
		c.depth--
		return true
	}
	for {
		if !c.value() {
			return false
		}
		switch c.peek() {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			c.depth--
			return true
		default:
			return c.fail("expecting ',' delimiter")
		}
	}
}

func (c *canonicalizer) object() bool {
	if !c.enter() {
		return false
	}
	c.pos++
	objStart := len(c.out)
	c.out = append(c.out, '{')
	base := len(c.spans)
	sorted := true
	if c.peek() == '}' {
		c.pos++
		c.out = append(c.out, '}')
		c.depth--
		return true
	}
	for {
		if c.peek() != '"' {
			return c.fail("expecting property name enclosed in double quotes")
		}
		start := len(c.out)
		keyOff, keyLen, ok := c.key_()
		if !ok {
			return false
		}
		if c.peek() != ':' {
			return c.fail("expecting ':' delimiter")
		}
		c.pos++
		c.out = append(c.out, ':')
		val := len(c.out)
		if !c.value() {
			return false
		}
		m := member{keyOff: keyOff, keyLen: keyLen, start: int32(start), val: int32(val), end: int32(len(c.out))}
		if keyOff >= 0 && int(keyOff)+8 <= len(c.in) {
			// The usual case: 8 bytes of the line, masked to the key.
			m.prefix = binary.BigEndian.Uint64(c.in[keyOff:])
			if keyLen < 8 {
				m.prefix &^= ^uint64(0) >> (8 * keyLen)
			}
		} else {
			m.prefix = keyPrefix(c.key(&m))
		}
		// Equal keys also count as unsorted: sortMembers catches duplicates.
		if n := len(c.spans); n > base && sorted {
			if p := &c.spans[n-1]; p.prefix > m.prefix || p.prefix == m.prefix && c.compareKeys(p, &m) >= 0 {
				sorted = false
			}
		}
		c.spans = append(c.spans, m)
		b := c.peek()
		if b == '}' {
			c.pos++
			break
		}
		if b != ',' {
			return c.fail("expecting ',' delimiter")
		}
		c.pos++
		c.out = append(c.out, ',')
	}
	c.out = append(c.out, '}')
	c.depth--
	if c.depth == c.outer {
		// The outermost object: its members stay for the record extraction,
		// and appendTo writes them in order straight into the record's own
		// buffer, which saves rewriting the whole line here.
		c.topSorted = sorted
		return sorted || c.sortMembers(base)
	}
	if !sorted && !c.reorder(objStart, base) {
		return false
	}
	c.spans = c.spans[:base]
	return true
}

// appendTo appends the canonical text of the line last canonicalised.
func (c *canonicalizer) appendTo(dst []byte) []byte {
	if c.topSorted || len(c.out) == 0 || c.out[0] != '{' {
		return append(dst, c.out...)
	}
	dst = append(dst, '{')
	for i, m := range c.spans {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c.out[m.start:m.end]...)
	}
	return append(dst, '}')
}

// sortMembers sorts the members of the object with spans from base by key.
// Equal keys are adjacent after the sort, which is where duplicates are
// caught (Python's object_pairs_hook rejects them too, once the object is
// complete).
func (c *canonicalizer) sortMembers(base int) bool {
	ms := c.spans[base:]
	if len(ms) <= 12 {
		// Insertion sort: objects are small.
		for i := 1; i < len(ms); i++ {
			m := ms[i]
			j := i
			for ; j > 0; j-- {
				p := &ms[j-1]
				if p.prefix < m.prefix || p.prefix == m.prefix && c.compareKeys(p, &m) <= 0 {
					break
				}
				ms[j] = *p
			}
			ms[j] = m
		}
	} else {
		slices.SortFunc(ms, func(a, b member) int { return c.compareKeys(&a, &b) })
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].prefix != ms[i-1].prefix {
			continue
		}
		if k := c.key(&ms[i]); bytes.Equal(c.key(&ms[i-1]), k) {
			c.reason = "duplicate key " + string(appendString(nil, k))
			return false
		}
	}
	return true
}

// reorder sorts the members of the nested object written at out[objStart:]
// and rewrites them in that order.
func (c *canonicalizer) reorder(objStart, base int) bool {
	if !c.sortMembers(base) {
		return false
	}
	// The members' offsets are not updated: a nested object's spans are
	// dropped once it is written.
	bodyStart := int32(objStart + 1)
	c.tmp = append(c.tmp[:0], c.out[bodyStart:len(c.out)-1]...)
	w := bodyStart
	for i, m := range c.spans[base:] {
		if i > 0 {
			c.out[w] = ','
			w++
		}
		w += int32(copy(c.out[w:], c.tmp[m.start-bodyStart:m.end-bodyStart]))
	}
	return true
}
