package graph

import "strings"

// arena hands out the memory of the records a Reader returns in pieces of
// larger allocations: one allocation per slab of records, of canonical
// bytes and of id strings, rather than three or four small ones per line.
// Callers own the records, so a slab is never reused: when it is used up,
// the arena starts a new one and the old one lives on for as long as any
// record in it does. (A caller that keeps only a few records of a stream
// keeps their slabs, up to arenaSlab bytes each, alive.)
//
// The zero arena is disabled and allocates every piece on its own: a
// LineParser parses one line at a time for callers that may keep any one
// record for long, where slabs would waste memory.
type arena struct {
	on   bool
	recs []Record // the unused records of the current slab
	buf  []byte   // the unused bytes of the current slab (len 0)
	// strs holds the decoded strings (ids) of records. strings.Builder
	// never changes bytes it has written and String() aliases its buffer
	// without copying, so slicing String() hands out immutable strings
	// from one allocation. A full builder is replaced, never reset.
	strs *strings.Builder
}

const (
	arenaSlab    = 64 << 10 // bytes of a byte or string slab
	arenaRecords = 256      // records in a record slab (~48 KiB)
	// Pieces longer than this are allocated on their own, so that a slab
	// is never abandoned while mostly unused.
	arenaMaxPiece = arenaSlab / 8
)

// record returns a new zero Record.
func (a *arena) record() *Record {
	if !a.on {
		return &Record{}
	}
	if len(a.recs) == 0 {
		a.recs = make([]Record, arenaRecords)
	}
	r := &a.recs[0]
	a.recs = a.recs[1:]
	return r
}

// bytes returns an empty slice with capacity n, which the caller fills with
// append. Its capacity is exactly n, so that appending beyond it (by the
// record's owner) reallocates rather than writes into the next piece.
func (a *arena) bytes(n int) []byte {
	if !a.on || n > arenaMaxPiece {
		return make([]byte, 0, n)
	}
	if cap(a.buf) < n {
		a.buf = make([]byte, 0, arenaSlab)
	}
	b := a.buf[:0:n]
	a.buf = a.buf[n:n:cap(a.buf)]
	return b
}

// string returns the concatenation of parts as a string.
func (a *arena) string(parts ...[]byte) string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if !a.on || n > arenaMaxPiece {
		var sb strings.Builder
		sb.Grow(n)
		for _, p := range parts {
			sb.Write(p)
		}
		return sb.String()
	}
	if a.strs == nil || a.strs.Cap()-a.strs.Len() < n {
		a.strs = new(strings.Builder)
		a.strs.Grow(arenaSlab)
	}
	off := a.strs.Len()
	for _, p := range parts {
		a.strs.Write(p)
	}
	return a.strs.String()[off:]
}
