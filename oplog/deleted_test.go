package oplog

import (
	"fmt"
	"testing"
)

// TestDeletedNodes: the filter never hides a deleted node, at every size
// (an empty set, one filter word, the 2^24-bit cap).
func TestDeletedNodes(t *testing.T) {
	for _, n := range []int{0, 1, 50, 5000, 1<<20 + 1} {
		m := map[string]int{}
		for i := range n {
			m[fmt.Sprintf("n%d", i*3)] = i + 1
		}
		d := newDeletedNodes(m)
		if n > 0 && uint64(len(d.words)) != d.mask+1 {
			t.Fatalf("%d nodes: %d filter words for mask %#x", n, len(d.words), d.mask)
		}
		for i := range 3 * max(n, 10) {
			if n > 100000 && i%97 != 0 {
				continue
			}
			id := fmt.Sprintf("n%d", i)
			s, ok := m[id]
			for _, seq := range []int{0, s - 1, s, s + 1} {
				if got, want := d.after(id, seq), ok && s > seq; got != want {
					t.Fatalf("%d nodes: after(%s, %d) = %v, want %v", n, id, seq, got, want)
				}
			}
		}
	}
}

// TestDeletedNodesFilter: the filter sends few of the ids it was not built
// from on to the map (the merge asks it for every endpoint of the base).
func TestDeletedNodesFilter(t *testing.T) {
	for _, n := range []int{1000, 25000, 200000} {
		m := map[string]int{}
		for i := range n {
			m[fmt.Sprintf("n%d", i*7)] = 1
		}
		d := newDeletedNodes(m)
		passed, asked := 0, 0
		for i := range 20 * n {
			if i%7 == 0 {
				continue
			}
			asked++
			if d.mayHold(fmt.Sprintf("n%d", i)) {
				passed++
			}
		}
		if rate := float64(passed) / float64(asked); rate > 0.03 {
			t.Errorf("%d nodes: %.2f%% of other ids pass the filter, want under 3%%", n, 100*rate)
		} else {
			t.Logf("%d nodes (%d filter words): %.2f%% of other ids pass", n, len(d.words), 100*rate)
		}
	}
}
