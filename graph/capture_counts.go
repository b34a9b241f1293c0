package graph

import "unsafe"

// tierCounts counts a tier's labels and relationship types, and hashes its
// label lists, by the identity of what the parser interns: every record
// with the same label list shares one slice, and with the same type one
// string. A record then costs a pointer comparison in a small cache rather
// than a map update per label and a hash per label list (both were 3% of a
// graph backup's CPU). Lists and types that are not interned (more distinct
// ones than the parser keeps) still count right, by missing the cache.
type tierCounts struct {
	lists [64]listCount
	types [32]typeCount
}

type listCount struct {
	list  []string
	hash  uint64 // labelHash(list)
	nodes int64  // nodes carrying the list, not yet in the stats
	known bool   // in the tier's lists (see rememberList)
}

type typeCount struct {
	typ  string
	rels int64 // not yet in the stats
}

// slot spreads a pointer over n (a power of two) cache slots.
func slot(p unsafe.Pointer, n int) int {
	return int((uint64(uintptr(p)) * 0x9e3779b97f4a7c15) >> 32 & uint64(n-1))
}

// labels returns labelHash(list) and, for a node's own labels, counts them.
func (t *TierSorter) labels(list []string, node bool) uint64 {
	if len(list) == 0 {
		return 0
	}
	p := unsafe.Pointer(unsafe.SliceData(list))
	e := &t.counts.lists[slot(p, len(t.counts.lists))]
	if unsafe.Pointer(unsafe.SliceData(e.list)) != p || len(e.list) != len(list) {
		t.flushList(e)
		*e = listCount{list: list, hash: labelHash(t.seed, list)}
	}
	if node {
		e.nodes++
		if !e.known {
			e.known = true
			t.rememberList(e.hash, list)
		}
	}
	return e.hash
}

// countType counts a relationship of type typ.
func (t *TierSorter) countType(typ string) {
	p := unsafe.Pointer(unsafe.StringData(typ))
	e := &t.counts.types[slot(p, len(t.counts.types))]
	if unsafe.Pointer(unsafe.StringData(e.typ)) != p || len(e.typ) != len(typ) {
		t.flushType(e)
		*e = typeCount{typ: typ}
	}
	e.rels++
}

func (t *TierSorter) flushList(e *listCount) {
	if e.nodes > 0 {
		for _, l := range e.list {
			t.stats.Labels[l] += e.nodes
		}
	}
	*e = listCount{}
}

func (t *TierSorter) flushType(e *typeCount) {
	if e.rels > 0 {
		t.stats.Types[e.typ] += e.rels
	}
	*e = typeCount{}
}

// flushCounts moves the cached counts into the stats (before they are read).
func (t *TierSorter) flushCounts() {
	for i := range t.counts.lists {
		t.flushList(&t.counts.lists[i])
	}
	for i := range t.counts.types {
		t.flushType(&t.counts.types[i])
	}
}
