package graph

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// extSort is a stable external merge sort of byte strings ("items") under a
// caller's order. Items are packed into blocks until memLimit bytes are held,
// then sorted and written to a temporary run file; sorted() k-way merges the
// runs with the items still in memory. Equal items come out in the order
// they were added: runs are cut in input order, each run is sorted stably,
// and the merge breaks ties by run number.
//
// Memory: memLimit for the items, plus per merged run one read buffer (and a
// zstd decoder if compressing), with at most fanIn runs open at a time (more
// runs are first merged in passes), which also bounds open files.
type extSort struct {
	memLimit int64
	tmpDir   string
	compare  func(a, b []byte) int
	// prefix maps an item to a number that orders as the item does where
	// they differ: prefix(a) < prefix(b) implies compare(a, b) < 0. The
	// in-memory sort compares prefixes first.
	prefix   func(item []byte) uint64
	compress bool
	fanIn    int

	blocks   [][]byte // packed items
	free     [][]byte // blocks of a spilled run, for the next
	blockCap int
	items    []itemRef
	scratch  []itemRef // radixSort's other buffer
	held     int64
	runs     []string // run files, in input order
	done     bool
}

// itemRef locates an item in the blocks. Blocks fill in input order, so
// (blk, off) is the item's input order.
type itemRef struct {
	pfx         uint64
	blk, off, n int32
}

// itemOverhead is what an item costs beyond its bytes (its itemRef, and
// another in the radix sort's scratch), counted against memLimit.
const itemOverhead = 48

const defaultFanIn = 64

// maxItem bounds an item: a record item holds a canonical line (at most
// 3 * maxLine) and its decoded fields.
const maxItem = 4 * maxLine

func newExtSort(memLimit int64, tmpDir string, compare func(a, b []byte) int, prefix func([]byte) uint64) *extSort {
	if memLimit < 1<<10 {
		memLimit = 1 << 10
	}
	bc := memLimit / 16
	bc = max(4<<10, min(bc, 4<<20))
	return &extSort{memLimit: memLimit, tmpDir: tmpDir, compare: compare, prefix: prefix, fanIn: defaultFanIn, blockCap: int(bc)}
}

// add copies item into the sort.
func (s *extSort) add(item []byte) error { return s.add2(item, nil) }

// add2 copies the item head+tail into the sort, without joining them first
// (a record item is a short head and a canonical line).
func (s *extSort) add2(head, tail []byte) error {
	if s.done {
		return errors.New("add item: sort already started")
	}
	size := len(head) + len(tail)
	if size > maxItem {
		return fmt.Errorf("add item: item of %d bytes is too large", size)
	}
	cost := int64(size) + itemOverhead
	if s.held+cost > s.memLimit && len(s.items) > 0 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	s.held += cost
	n := len(s.blocks)
	if n == 0 || len(s.blocks[n-1])+size > cap(s.blocks[n-1]) {
		// Items never straddle blocks; an item larger than a block gets
		// one of its own.
		var blk []byte
		if k := len(s.free); k > 0 && size <= s.blockCap {
			blk, s.free = s.free[k-1], s.free[:k-1]
		} else {
			blk = make([]byte, 0, max(s.blockCap, size))
		}
		s.blocks = append(s.blocks, blk)
		n++
	}
	b := s.blocks[n-1]
	off := len(b)
	b = append(append(b, head...), tail...)
	s.blocks[n-1] = b
	s.items = append(s.items, itemRef{pfx: s.prefix(b[off:]), blk: int32(n - 1), off: int32(off), n: int32(size)})
	return nil
}

func (s *extSort) item(r itemRef) []byte {
	return s.blocks[r.blk][r.off : r.off+r.n : r.off+r.n]
}

// sortMemory sorts the items in memory, equal ones in input order.
func (s *extSort) sortMemory() {
	s.items, s.scratch = radixSort(s.items, s.scratch, func(a, b itemRef) int {
		return s.compare(s.item(a), s.item(b))
	})
}

// bytesPrefix packs the first 8 bytes of b big-endian, zero-padded: an order
// prefix for items ordered by b's bytes first.
func bytesPrefix(b []byte) uint64 {
	if len(b) >= 8 {
		return binary.BigEndian.Uint64(b)
	}
	var p uint64
	for i := 0; i < 8; i++ {
		p <<= 8
		if i < len(b) {
			p |= uint64(b[i])
		}
	}
	return p
}

// spill sorts the items in memory and writes them as a new run.
func (s *extSort) spill() error {
	s.sortMemory()
	path, err := s.writeRun(func(emit func([]byte) error) error {
		for _, r := range s.items {
			if err := emit(s.item(r)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.runs = append(s.runs, path)
	// Keep the blocks of the usual size for the next run (it fills as many
	// again: reallocating them was most of a sort's allocation), drop the
	// others so that one huge item does not pin its block.
	for _, b := range s.blocks {
		if cap(b) == s.blockCap {
			s.free = append(s.free, b[:0])
		}
	}
	clear(s.blocks)
	s.blocks = s.blocks[:0]
	s.items = s.items[:0]
	s.held = 0
	return nil
}

// writeRun writes the items fill emits to a new temporary run file: each
// item as uvarint(length) + bytes, the whole stream zstd-compressed if set.
func (s *extSort) writeRun(fill func(emit func([]byte) error) error) (path string, err error) {
	f, err := os.CreateTemp(s.tmpDir, "strata-sort-*.run")
	if err != nil {
		return "", fmt.Errorf("create sort run: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var w io.Writer = f
	var zw *zstd.Encoder
	if s.compress {
		zw, err = zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<18), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return "", fmt.Errorf("create sort run: %w", err)
		}
		w = zw
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr [binary.MaxVarintLen64]byte
	err = fill(func(item []byte) error {
		n := binary.PutUvarint(hdr[:], uint64(len(item)))
		if _, err := bw.Write(hdr[:n]); err != nil {
			return err
		}
		_, err := bw.Write(item)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if zw != nil {
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write sort run: %w", err)
	}
	return f.Name(), nil
}

// sorted ends the adding and returns the items in order. The iterator owns
// the run files and removes them on close.
func (s *extSort) sorted() (*mergeIter, error) {
	if s.done {
		return nil, errors.New("sort items: already sorted")
	}
	s.done = true
	s.free = nil
	s.sortMemory()
	// Merge in passes until few enough runs remain to open at once.
	for len(s.runs) > s.fanIn {
		var next []string
		for i := 0; i < len(s.runs); i += s.fanIn {
			group := s.runs[i:min(i+s.fanIn, len(s.runs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			path, err := s.mergeRuns(group)
			if err != nil {
				s.removeRuns(append(next, s.runs[i:]...))
				s.runs = nil
				return nil, err
			}
			next = append(next, path)
		}
		s.runs = next
	}
	it := &mergeIter{s: s, runs: s.runs}
	s.runs = nil
	for i, path := range it.runs {
		src, err := s.openRun(path)
		if err != nil {
			it.Close()
			return nil, err
		}
		it.srcs = append(it.srcs, src)
		it.push(i, src)
	}
	mem := &memSource{s: s}
	it.srcs = append(it.srcs, mem)
	it.push(len(it.runs), mem)
	if it.err != nil {
		err := it.err
		it.Close()
		return nil, err
	}
	return it, nil
}

// mergeRuns merges consecutive runs into one new run and removes them.
func (s *extSort) mergeRuns(group []string) (string, error) {
	it := &mergeIter{s: s, runs: group}
	defer it.Close() // removes the group's files
	for i, path := range group {
		src, err := s.openRun(path)
		if err != nil {
			return "", err
		}
		it.srcs = append(it.srcs, src)
		it.push(i, src)
	}
	return s.writeRun(func(emit func([]byte) error) error {
		for {
			item, err := it.next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := emit(item); err != nil {
				return err
			}
		}
	})
}

func (s *extSort) removeRuns(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// each calls fn with every item added so far, in no particular order (the
// runs' items, then those in memory), before the sort starts. An item is
// valid only during its call.
func (s *extSort) each(fn func(item []byte) error) error {
	if s.done {
		return errors.New("read items: sort already started")
	}
	for _, path := range s.runs {
		src, err := s.openRun(path)
		if err != nil {
			return err
		}
		for {
			item, err := src.next()
			if err == io.EOF {
				break
			}
			if err == nil {
				err = fn(item)
			}
			if err != nil {
				src.close()
				return err
			}
		}
		if err := src.close(); err != nil {
			return fmt.Errorf("read sort run: %w", err)
		}
	}
	for _, r := range s.items {
		if err := fn(s.item(r)); err != nil {
			return err
		}
	}
	return nil
}

// discard removes the run files of a sort that will not be merged.
func (s *extSort) discard() {
	s.removeRuns(s.runs)
	s.runs, s.items, s.scratch, s.blocks, s.free, s.done = nil, nil, nil, nil, nil, true
}

// source is one sorted input of a merge.
type source interface {
	next() ([]byte, error) // the item stays valid until the next call
	close() error
}

type memSource struct {
	s *extSort
	i int
}

func (m *memSource) next() ([]byte, error) {
	if m.i >= len(m.s.items) {
		return nil, io.EOF
	}
	m.i++
	return m.s.item(m.s.items[m.i-1]), nil
}

func (m *memSource) close() error {
	m.s.items, m.s.scratch, m.s.blocks, m.s.free = nil, nil, nil, nil
	return nil
}

type fileSource struct {
	f   *os.File
	zr  *zstd.Decoder
	br  *bufio.Reader
	buf []byte
}

func (s *extSort) openRun(path string) (*fileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open sort run: %w", err)
	}
	src := &fileSource{f: f}
	var r io.Reader = f
	if s.compress {
		src.zr, err = zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open sort run: %w", err)
		}
		r = src.zr
	}
	src.br = bufio.NewReaderSize(r, 32<<10)
	return src, nil
}

// next returns the next item. An item that fits in the read buffer is
// returned in place (valid until the next call, as promised), not copied.
func (f *fileSource) next() ([]byte, error) {
	hdr, err := f.br.Peek(binary.MaxVarintLen64)
	if len(hdr) == 0 {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read sort run: %w", err)
	}
	n, k := binary.Uvarint(hdr)
	if k <= 0 {
		return nil, fmt.Errorf("read sort run: %w", errCorruptItem)
	}
	if n > maxItem {
		return nil, fmt.Errorf("read sort run: item of %d bytes", n)
	}
	if total := k + int(n); total <= f.br.Size() {
		b, err := f.br.Peek(total)
		if err != nil {
			return nil, fmt.Errorf("read sort run: %w", io.ErrUnexpectedEOF)
		}
		f.br.Discard(total) // the peeked bytes stay put until the next read
		return b[k:], nil
	}
	f.br.Discard(k)
	if uint64(cap(f.buf)) < n {
		f.buf = make([]byte, n)
	}
	f.buf = f.buf[:n]
	if _, err := io.ReadFull(f.br, f.buf); err != nil {
		return nil, fmt.Errorf("read sort run: %w", io.ErrUnexpectedEOF)
	}
	return f.buf, nil
}

func (f *fileSource) close() error {
	if f.zr != nil {
		f.zr.Close()
	}
	return f.f.Close()
}

// mergeIter k-way merges sources with a heap; ties go to the lower source
// number, i.e. the earlier input.
type mergeIter struct {
	s      *extSort
	runs   []string // files to remove on close
	srcs   []source
	h      cursorHeap
	last   int // source of the item returned last, to advance first
	err    error
	closed bool
}

type cursor struct {
	src  int
	pfx  uint64 // the item's prefix: most comparisons end here
	item []byte
}

// cursorHeap is a binary min-heap of cursors by (item, src), written out
// rather than through container/heap: the merge of a spilled sort compares
// a few times per item, and interface calls and full comparisons were a
// tenth of a graph backup.
type cursorHeap struct {
	cs      []cursor
	compare func(a, b []byte) int
}

func (h *cursorHeap) less(a, b *cursor) bool {
	if a.pfx != b.pfx {
		return a.pfx < b.pfx
	}
	if c := h.compare(a.item, b.item); c != 0 {
		return c < 0
	}
	return a.src < b.src
}

func (h *cursorHeap) push(c cursor) {
	h.cs = append(h.cs, c)
	i := len(h.cs) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(&h.cs[i], &h.cs[p]) {
			break
		}
		h.cs[i], h.cs[p] = h.cs[p], h.cs[i]
		i = p
	}
}

// down restores the heap after the top cursor changed.
func (h *cursorHeap) down() {
	cs := h.cs
	i, n := 0, len(cs)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(&cs[r], &cs[l]) {
			m = r
		}
		if !h.less(&cs[m], &cs[i]) {
			return
		}
		cs[i], cs[m] = cs[m], cs[i]
		i = m
	}
}

// pop removes the top cursor.
func (h *cursorHeap) pop() {
	n := len(h.cs) - 1
	h.cs[0] = h.cs[n]
	h.cs = h.cs[:n]
	h.down()
}

// push reads the first item of src into the heap.
func (m *mergeIter) push(i int, src source) {
	m.h.compare = m.s.compare
	m.last = -1
	item, err := src.next()
	if err == nil {
		m.h.push(cursor{src: i, pfx: m.s.prefix(item), item: item})
	} else if err != io.EOF && m.err == nil {
		m.err = err
	}
}

// next returns the next item, valid until the following call.
func (m *mergeIter) next() ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	if m.last >= 0 {
		// Advance the source whose item was handed out last time; only now
		// may its buffer be reused.
		top := &m.h.cs[0]
		item, err := m.srcs[top.src].next()
		switch {
		case err == nil:
			top.item, top.pfx = item, m.s.prefix(item)
			m.h.down()
		case err == io.EOF:
			m.h.pop()
		default:
			m.err = err
			return nil, err
		}
	}
	if len(m.h.cs) == 0 {
		m.last = -1
		return nil, io.EOF
	}
	m.last = m.h.cs[0].src
	return m.h.cs[0].item, nil
}

// Close closes the sources and removes the run files.
func (m *mergeIter) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	var err error
	for _, src := range m.srcs {
		if cerr := src.close(); err == nil {
			err = cerr
		}
	}
	for _, p := range m.runs {
		if rerr := os.Remove(p); rerr != nil && err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("close sort: %w", err)
	}
	return nil
}
