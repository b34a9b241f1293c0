package oplog

import "math/bits"

// deletedNodes is the set of nodes a replayed batch deleted, each with the
// sequence number of its last delete, as the merge asks it: once for each
// endpoint of every relationship of the base. Most relationships touch no
// deleted node, and the map, which grows with the log, misses the cache
// on nearly every lookup; a bit filter of 64 bits per deleted node, in
// front of it, answers most of them from the CPU's cache.
type deletedNodes struct {
	m    map[string]int
	bits []uint64 // bit idHash(id) & mask set for every id of m
	mask uint64
}

func newDeletedNodes(m map[string]int) *deletedNodes {
	d := &deletedNodes{m: m}
	if len(m) == 0 {
		return d
	}
	// 64 bits per node (one probe: about 1.5% of the misses reach the
	// map; at 16 bits, 6% did, most of the map's lookups), at most 2^24
	// bits (2 MiB), past which the filter would miss the cache as the
	// map does.
	n := uint64(1) << 10
	for n < 64*uint64(len(m)) && n < 1<<24 {
		n <<= 1
	}
	d.bits, d.mask = make([]uint64, n/64), n-1
	for id := range m {
		h := idHash(id) & d.mask
		d.bits[h/64] |= 1 << (h % 64)
	}
	return d
}

// after reports whether node was deleted after sequence number seq (0:
// at all, for a record of the base).
func (d *deletedNodes) after(node string, seq int) bool {
	if d.bits == nil {
		return false
	}
	h := idHash(node) & d.mask
	if d.bits[h/64]&(1<<(h%64)) == 0 {
		return false
	}
	s, ok := d.m[node]
	return ok && s > seq
}

// idHash mixes an id's first and last eight bytes and its length: a few
// instructions where a seeded hash of the whole id took about 40 ns, twice
// for every relationship. It is not keyed: ids made to collide only send
// more lookups on to the map, which decides.
func idHash(s string) uint64 {
	n := len(s)
	var a, b uint64
	if n >= 8 {
		a, b = le64(s[:8]), le64(s[n-8:])
	} else {
		for i := range n {
			a |= uint64(s[i]) << (8 * i)
		}
		b = a
	}
	h := (a ^ bits.RotateLeft64(b, 31) ^ uint64(n)) * 0x9e3779b97f4a7c15
	return h ^ h>>29
}

func le64(s string) uint64 {
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
