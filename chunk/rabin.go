package chunk

import (
	"sync"

	"github.com/restic/chunker"
)

// The boundary search of restic/chunker, restated so that it can run
// several hash chains at once.
//
// restic/chunker slides a 64-byte window over the data with a Rabin
// fingerprint modulo the polynomial and cuts after byte j when the low
// AverageBits bits of the fingerprint are zero and the chunk holds at least
// MinSize bytes (or when it reaches MaxSize). It skips the first
// MinSize-64 bytes of every chunk and starts the window from zeros, so at
// every byte where it may cut the fingerprint is that of exactly the 64
// bytes ending there: a pure function of those bytes, not of where the
// chunk began. So the search for the first cut of a chunk can split its
// range into pieces and fingerprint each from its own first 64 bytes.
//
// Why: each step of one fingerprint waits for the table load of the step
// before it, so a single chain runs at the speed of L1 latency (~375 MB/s a
// core here, a third of a file backup's CPU). Four independent chains
// overlap those waits: ~815 MB/s on the same data and cuts.

// window is restic/chunker's window size.
const window = 64

// rabinTables are restic/chunker's tables for one polynomial: out[b]
// removes byte b leaving the window, mod[b] reduces the byte shifted out
// above the polynomial's degree.
type rabinTables struct {
	out, mod [256]uint64
}

var tableCache sync.Map // chunker.Pol -> *rabinTables

// tablesFor computes the tables as restic/chunker does (chunker.go,
// fillTables), with its exported polynomial arithmetic.
func tablesFor(pol chunker.Pol) *rabinTables {
	if t, ok := tableCache.Load(pol); ok {
		return t.(*rabinTables)
	}
	appendByte := func(h chunker.Pol, b byte) chunker.Pol {
		return (h<<8 | chunker.Pol(b)).Mod(pol)
	}
	t := &rabinTables{}
	for b := range 256 {
		h := appendByte(0, byte(b))
		for range window - 1 {
			h = appendByte(h, 0)
		}
		t.out[b] = uint64(h)
	}
	k := uint(pol.Deg())
	for b := range 256 {
		t.mod[b] = uint64(chunker.Pol(uint64(b)<<k).Mod(pol) | chunker.Pol(b)<<k)
	}
	tableCache.Store(pol, t)
	return t
}

// polShift is the polynomial's degree minus 8: Validate admits degree 53
// only, and a constant shift lets byte(d>>polShift) index the tables
// without bounds checks (d < 2^53, so the byte conversion drops nothing).
const polShift = 53 - 8

// fingerprint returns the fingerprint of w (64 bytes) from a window of
// zeros, whose own fingerprint is 0.
func (t *rabinTables) fingerprint(w []byte) uint64 {
	var d uint64
	for _, b := range w[:window] {
		d = (d<<8 | uint64(b)) ^ t.mod[byte(d>>polShift)]
	}
	return d
}

// piece is the length of the ranges the four chains take.
const piece = 16 << 10

// firstCut returns the least j in [lo, hi) whose window buf[j-63:j+1] has
// a fingerprint with no bit of mask set, or -1. lo must be at least 63.
func (t *rabinTables) firstCut(buf []byte, lo, hi int, mask uint64) int {
	if lo == window-1 && lo < hi {
		// A chunk's first window (MinSize 64): the chains below slide in
		// from the byte before their first window, which this one lacks.
		if t.fingerprint(buf[:window])&mask == 0 {
			return lo
		}
		lo++
	}
	for hi-lo >= 4*piece {
		// Four pieces side by side; chain k covers [lo+k*piece,
		// lo+(k+1)*piece). A cut in an earlier piece wins, so a full pass
		// costs at most the rest of a group when one is found.
		a, b, c, e := buf[lo-window:lo+piece], buf[lo+piece-window:lo+2*piece], buf[lo+2*piece-window:lo+3*piece], buf[lo+3*piece-window:lo+4*piece]
		da, db, dc, de := t.fingerprint(a), t.fingerprint(b), t.fingerprint(c), t.fingerprint(e)
		hb, hc, he := -1, -1, -1
		for i := window; i < window+piece; i++ {
			da ^= t.out[a[i-window]]
			db ^= t.out[b[i-window]]
			dc ^= t.out[c[i-window]]
			de ^= t.out[e[i-window]]
			da = (da<<8 | uint64(a[i])) ^ t.mod[byte(da>>polShift)]
			db = (db<<8 | uint64(b[i])) ^ t.mod[byte(db>>polShift)]
			dc = (dc<<8 | uint64(c[i])) ^ t.mod[byte(dc>>polShift)]
			de = (de<<8 | uint64(e[i])) ^ t.mod[byte(de>>polShift)]
			if da&mask == 0 || db&mask == 0 || dc&mask == 0 || de&mask == 0 {
				if da&mask == 0 {
					return lo + i - window // the first piece's first cut
				}
				if db&mask == 0 && hb < 0 {
					hb = lo + piece + i - window
				}
				if dc&mask == 0 && hc < 0 {
					hc = lo + 2*piece + i - window
				}
				if de&mask == 0 && he < 0 {
					he = lo + 3*piece + i - window
				}
			}
		}
		for _, h := range [...]int{hb, hc, he} {
			if h >= 0 {
				return h
			}
		}
		lo += 4 * piece
	}
	if lo >= hi {
		return -1
	}
	// The tail, one chain: the window ending at lo, then slide.
	d := t.fingerprint(buf[lo-window+1 : lo+1])
	if d&mask == 0 {
		return lo
	}
	for j := lo + 1; j < hi; j++ {
		d ^= t.out[buf[j-window]]
		d = (d<<8 | uint64(buf[j])) ^ t.mod[byte(d>>polShift)]
		if d&mask == 0 {
			return j
		}
	}
	return -1
}
