package graph

import "slices"

// radixSort sorts items by their prefixes with a stable LSD radix sort (one
// pass per byte of the prefix that varies; a byte every item shares is
// skipped), then orders each run of equal prefixes with less, stably. Input
// order is the items' order, so equal items stay in input order.
//
// The sort of a spilled run was pdqsort comparing prefixes first: about 23
// comparisons an item at a run of 150,000 items, each a branch the CPU
// mispredicts half the time. The radix passes move each item a few times
// with no comparisons at all; ids differ within their first 8 bytes often
// enough that the runs left to compare are short.
//
// scratch is reused between calls; the sorted items may end up in either
// slice, and radixSort returns the one that holds them.
func radixSort(items, scratch []itemRef, less func(a, b itemRef) int) (sorted, spare []itemRef) {
	n := len(items)
	if n < 64 {
		slices.SortStableFunc(items, func(a, b itemRef) int {
			if a.pfx != b.pfx {
				if a.pfx < b.pfx {
					return -1
				}
				return 1
			}
			return less(a, b)
		})
		return items, scratch
	}
	var counts [8][256]int
	for i := range items {
		p := items[i].pfx
		for b := range 8 {
			counts[b][byte(p>>(8*b))]++
		}
	}
	if cap(scratch) < n {
		scratch = make([]itemRef, n)
	}
	src, dst := items, scratch[:n]
	for b := range 8 {
		c := &counts[b]
		if c[byte(src[0].pfx>>(8*b))] == n {
			continue // every item has this byte
		}
		sum := 0
		for i := range c {
			sum, c[i] = sum+c[i], sum
		}
		shift := 8 * b
		for _, it := range src {
			k := byte(it.pfx >> shift)
			dst[c[k]] = it
			c[k]++
		}
		src, dst = dst, src
	}
	// Equal prefixes: compare the items themselves.
	for i := 0; i < n; {
		j := i + 1
		for j < n && src[j].pfx == src[i].pfx {
			j++
		}
		if j-i > 1 {
			slices.SortStableFunc(src[i:j], less)
		}
		i = j
	}
	return src, dst
}
