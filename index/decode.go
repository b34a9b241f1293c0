package index

import (
	"bytes"
	"math"

	"github.com/strata-backup/strata/chunk"
)

// decodeFast parses an index object that is exactly what Encode writes:
//
//	{["supersedes":null|[]|["ID",...],]"packs":null|[]|[{"id":"ID","blobs":null|[]|[
//	  {"id":"ID","type":"data"|"tree","offset":N,"length":N,"raw_length":N[,"compressed":true]},...]},...]}
//
// with lowercase hex ids, no whitespace and no escapes. encoding/json took
// 3.3 us an entry, which made JSON decoding about half of the 70 s of CPU
// a cold index cache took to build at 10,000,000 blobs, and every check
// and prune pays it for every index object. false: the object has another
// shape (written by something else, damaged, hostile), and Decode hands it
// to encoding/json, whose result is the same for every object this
// accepts (FuzzDecodeFast).
func decodeFast(b []byte) (*File, bool) {
	s := &idxScanner{b: b}
	var f File
	ok := true
	if s.lit(`{"supersedes":`) {
		f.Supersedes, ok = list(s, s.id)
		ok = ok && s.lit(`,"packs":`)
	} else {
		ok = s.lit(`{"packs":`)
	}
	if !ok {
		return nil, false
	}
	if f.Packs, ok = list(s, s.pack); !ok || !s.lit(`}`) || s.i != len(b) {
		return nil, false
	}
	return &f, true
}

// list reads null (nil), [] (empty, not nil, as encoding/json gives) or
// [item,...], each item read by next.
func list[T any](s *idxScanner, next func() (T, bool)) ([]T, bool) {
	switch {
	case s.lit(`null`):
		return nil, true
	case s.lit(`[]`):
		return []T{}, true
	case !s.lit(`[`):
		return nil, false
	}
	var items []T
	for {
		item, ok := next()
		if !ok {
			return nil, false
		}
		items = append(items, item)
		if s.lit(`]`) {
			return items, true
		}
		if !s.lit(`,`) {
			return nil, false
		}
	}
}

// idxScanner reads the fixed shape decodeFast accepts; every method
// reports whether what it read was there.
type idxScanner struct {
	b []byte
	i int
}

func (s *idxScanner) lit(l string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(l)) {
		return false
	}
	s.i += len(l)
	return true
}

// id reads a quoted id of lowercase hex digits.
func (s *idxScanner) id() (chunk.ID, bool) {
	var id chunk.ID
	const n = 2*chunk.IDSize + 2
	if len(s.b)-s.i < n || s.b[s.i] != '"' || s.b[s.i+n-1] != '"' {
		return id, false
	}
	h := s.b[s.i+1 : s.i+n-1]
	var bad byte
	for k := range id {
		hi, lo := hexVal[h[2*k]], hexVal[h[2*k+1]]
		bad |= hi | lo
		id[k] = hi<<4 | lo&0x0f
	}
	if bad&0xf0 != 0 {
		return id, false
	}
	s.i += n
	return id, true
}

// hexVal maps a lowercase hex digit to its value, anything else to 0xff.
var hexVal = func() (t [256]byte) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = byte(c - '0')
		case c >= 'a' && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// uint32 reads a JSON number that is a uint32: digits, no leading zero.
func (s *idxScanner) uint32() (uint32, bool) {
	j := s.i
	var v uint64
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		v = v*10 + uint64(s.b[j]-'0')
		if v > math.MaxUint32 {
			return 0, false
		}
		j++
	}
	if j == s.i || s.b[s.i] == '0' && j > s.i+1 {
		return 0, false
	}
	s.i = j
	return uint32(v), true
}

func (s *idxScanner) pack() (Pack, bool) {
	var p Pack
	var ok bool
	if !s.lit(`{"id":`) {
		return p, false
	}
	if p.ID, ok = s.id(); !ok || !s.lit(`,"blobs":`) {
		return p, false
	}
	if p.Blobs, ok = list(s, s.blob); !ok {
		return p, false
	}
	return p, s.lit(`}`)
}

func (s *idxScanner) blob() (Blob, bool) {
	var b Blob
	var ok bool
	if !s.lit(`{"id":`) {
		return b, false
	}
	if b.ID, ok = s.id(); !ok {
		return b, false
	}
	switch {
	case s.lit(`,"type":"data","offset":`):
		b.Type = DataBlob
	case s.lit(`,"type":"tree","offset":`):
		b.Type = TreeBlob
	default:
		return b, false
	}
	if b.Offset, ok = s.uint32(); !ok || !s.lit(`,"length":`) {
		return b, false
	}
	if b.Length, ok = s.uint32(); !ok || !s.lit(`,"raw_length":`) {
		return b, false
	}
	if b.RawLength, ok = s.uint32(); !ok {
		return b, false
	}
	b.Compressed = s.lit(`,"compressed":true`)
	return b, s.lit(`}`)
}
