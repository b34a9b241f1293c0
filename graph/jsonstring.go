package graph

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Strings: scanning, decoding to WTF-8 and writing them back the way
// json.dumps(ensure_ascii=False) does (see canonical.go).

// strSpecial marks the bytes that end the fast scan of a string: the closing
// quote, an escape, and control characters (which strict JSON forbids raw).
var strSpecial = func() (t [256]bool) {
	for b := 0; b < 0x20; b++ {
		t[b] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str canonicalises the string value at c.pos (which is '"').
func (c *canonicalizer) str() bool {
	start := c.pos + 1
	i := scanPlain(c.in, start)
	if i < len(c.in) && c.in[i] == '"' {
		// No escapes: the raw text is already canonical (the line was
		// checked to be UTF-8, and only ", \ and controls need escaping).
		c.out = append(c.out, c.in[c.pos:i+1]...)
		c.pos = i + 1
		return true
	}
	dec, ok := c.decodeString(start, i)
	if ok {
		c.out = appendString(c.out, dec)
	}
	return ok
}

// key_ canonicalises the object key at c.pos and returns where its decoded
// bytes are (see member).
func (c *canonicalizer) key_() (off, n int32, ok bool) {
	start := c.pos + 1
	i := scanPlain(c.in, start)
	if i < len(c.in) && c.in[i] == '"' {
		c.out = append(c.out, c.in[c.pos:i+1]...)
		c.pos = i + 1
		return int32(start), int32(i - start), true
	}
	dec, ok := c.decodeString(start, i)
	if !ok {
		return 0, 0, false
	}
	c.out = appendString(c.out, dec)
	o := len(c.keys)
	c.keys = append(c.keys, dec...)
	return ^int32(o), int32(len(dec)), true
}

// decodeString decodes the string whose content starts at start; the bytes
// before i hold no escapes. It leaves c.pos after the closing quote and
// returns the decoded WTF-8 bytes (aliasing c.dec).
func (c *canonicalizer) decodeString(start, i int) ([]byte, bool) {
	in := c.in
	dec := append(c.dec[:0], in[start:i]...)
	defer func() { c.dec = dec[:0] }()
	for {
		if i >= len(in) {
			c.pos = start - 1
			return nil, c.fail("unterminated string")
		}
		b := in[i]
		switch {
		case b == '"':
			c.pos = i + 1
			return dec, true
		case b < 0x20:
			c.pos = i
			return nil, c.fail("invalid control character in string")
		case b != '\\':
			j := scanPlain(in, i+1)
			dec = append(dec, in[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(in) {
			c.pos = start - 1
			return nil, c.fail("unterminated string")
		}
		switch e := in[i+1]; e {
		case '"', '\\', '/':
			dec = append(dec, e)
		case 'b':
			dec = append(dec, '\b')
		case 'f':
			dec = append(dec, '\f')
		case 'n':
			dec = append(dec, '\n')
		case 'r':
			dec = append(dec, '\r')
		case 't':
			dec = append(dec, '\t')
		case 'u':
			r, ok := hex4(in, i+2)
			if !ok {
				c.pos = i
				return nil, c.fail(`invalid \uXXXX escape`)
			}
			i += 6
			// A high surrogate joins an immediately following escaped low
			// surrogate; anything else leaves it lone (as CPython does).
			if r >= 0xD800 && r < 0xDC00 && i+1 < len(in) && in[i] == '\\' && in[i+1] == 'u' {
				r2, ok := hex4(in, i+2)
				if !ok {
					c.pos = i
					return nil, c.fail(`invalid \uXXXX escape`)
				}
				if r2 >= 0xDC00 && r2 < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					i += 6
				}
			}
			dec = appendWTF8(dec, r)
			continue
		default:
			c.pos = i
			return nil, c.fail("invalid \\escape")
		}
		i += 2
	}
}

// scanPlain returns the offset of the first byte at or after i that ends a
// run of plain string content (see strSpecial), or len(b). It tests eight
// bytes at a time (SWAR): property text is most of a graph's bytes.
func scanPlain(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// A byte is special if < 0x20, == '"' or == '\\'; the classic
		// haszero/hasless tests flag the high bit of such bytes (bytes >=
		// 0x80 are masked out by ^x, so UTF-8 text stays on the fast
		// path). A borrow can also flag bytes above a special one, never
		// below it, so the lowest flag is the first special byte.
		lt := (x - ones*0x20) &^ x
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		if m := (lt | ((q - ones) &^ q) | ((bs - ones) &^ bs)) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && !strSpecial[b[i]] {
		i++
	}
	return i
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, h := range b[i : i+4] {
		switch {
		case h >= '0' && h <= '9':
			r = r<<4 | rune(h-'0')
		case h >= 'a' && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case h >= 'A' && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// appendWTF8 appends r as UTF-8, writing surrogates (which UTF-8 forbids) with
// the same three-byte pattern as any other BMP code point.
func appendWTF8(b []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(b, byte(r))
	case r < 0x800:
		return append(b, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return append(b, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// appendString appends s (WTF-8) as a canonical JSON string literal: what
// graphref's _dump_string writes.
func appendString(out, s []byte) []byte {
	if hasSurrogate(s) {
		return appendStringASCII(out, s)
	}
	out = append(out, '"')
	last := 0
	for i, b := range s {
		if !strSpecial[b] {
			continue
		}
		out = append(out, s[last:i]...)
		last = i + 1
		out = appendEscape(out, rune(b))
	}
	out = append(out, s[last:]...)
	return append(out, '"')
}

// hasSurrogate reports whether WTF-8 bytes hold a lone surrogate (ED A0..BF).
func hasSurrogate(s []byte) bool {
	for i := bytes.IndexByte(s, 0xED); i >= 0 && i+1 < len(s); {
		if s[i+1] >= 0xA0 {
			return true
		}
		j := bytes.IndexByte(s[i+1:], 0xED)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

const lowerHex = "0123456789abcdef"

// appendEscape writes the escape json.dumps uses for r.
func appendEscape(out []byte, r rune) []byte {
	switch r {
	case '"':
		return append(out, '\\', '"')
	case '\\':
		return append(out, '\\', '\\')
	case '\n':
		return append(out, '\\', 'n')
	case '\r':
		return append(out, '\\', 'r')
	case '\t':
		return append(out, '\\', 't')
	case '\b':
		return append(out, '\\', 'b')
	case '\f':
		return append(out, '\\', 'f')
	}
	if r >= 0x10000 { // as a UTF-16 surrogate pair
		r -= 0x10000
		out = appendEscape(out, 0xD800+r>>10)
		return appendEscape(out, 0xDC00+r&0x3FF)
	}
	return append(out, '\\', 'u', lowerHex[r>>12&0xF], lowerHex[r>>8&0xF], lowerHex[r>>4&0xF], lowerHex[r&0xF])
}

// appendStringASCII is encode_basestring_ascii: everything outside printable
// ASCII escaped, astral code points as surrogate pairs.
func appendStringASCII(out, s []byte) []byte {
	out = append(out, '"')
	for i := 0; i < len(s); {
		r, n := decodeWTF8(s[i:])
		i += n
		if r >= ' ' && r <= '~' && r != '"' && r != '\\' {
			out = append(out, byte(r))
			continue
		}
		out = appendEscape(out, r)
	}
	return append(out, '"')
}

// decodeWTF8 decodes one code point of well-formed WTF-8 (what this file
// produces; the line itself was checked to be UTF-8).
func decodeWTF8(s []byte) (rune, int) {
	b := s[0]
	switch {
	case b < 0x80:
		return rune(b), 1
	case b < 0xE0 && len(s) >= 2:
		return rune(b&0x1F)<<6 | rune(s[1]&0x3F), 2
	case b < 0xF0 && len(s) >= 3:
		return rune(b&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	case len(s) >= 4:
		return rune(b&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
	}
	return 0xFFFD, 1
}
