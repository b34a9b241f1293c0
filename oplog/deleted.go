package oplog

import "hash/maphash"

// deletedNodes is the set of nodes a replayed batch deleted, each with the
// sequence number of its last delete, as the merge asks it: once for each
// endpoint of every relationship of the base. Most relationships touch no
// deleted node, and the map, which grows with the log, misses the cache
// on nearly every lookup; a bit filter of a few bits per deleted node, in
// front of it, answers most of them from the CPU's cache.
type deletedNodes struct {
	m    map[string]int
	bits []uint64 // bit hash(id) & mask set for every id of m
	mask uint64
	seed maphash.Seed
}

func newDeletedNodes(m map[string]int) *deletedNodes {
	d := &deletedNodes{m: m, seed: maphash.MakeSeed()}
	if len(m) == 0 {
		return d
	}
	// 16 bits per node (one probe: about 6% of the misses reach the
	// map), at most 2^24 bits (2 MiB), past which the filter would miss
	// the cache as the map does.
	n := uint64(1) << 10
	for n < 16*uint64(len(m)) && n < 1<<24 {
		n <<= 1
	}
	d.bits, d.mask = make([]uint64, n/64), n-1
	for id := range m {
		h := maphash.String(d.seed, id) & d.mask
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
	h := maphash.String(d.seed, node) & d.mask
	if d.bits[h/64]&(1<<(h%64)) == 0 {
		return false
	}
	s, ok := d.m[node]
	return ok && s > seq
}
