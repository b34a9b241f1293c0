package graph

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Iterator is a stream of records, usually in canonical order (see Compare).
type Iterator interface {
	// Next returns the next record, or io.EOF after the last one. The
	// record is the caller's, except from a borrowing iterator
	// (NewBorrowedLineIterator, and a merge of such inputs), whose record
	// is valid only until the next call. Apply, Diff and oplog's replay
	// take borrowing inputs: they read an input on only after they are
	// done with its record.
	Next() (*Record, error)
	// Close releases what the iterator holds (temporary files included).
	Close() error
}

// Sorter puts records into canonical order with bounded memory: records are
// held (compactly encoded) until memLimit bytes are, then sorted runs spill
// to temporary files in tmpDir ("" for the system default), and Sort merges
// them. Records with the same kind and id come out adjacent, in the order
// they were added, so a caller can detect ids defined twice.
//
// Memory use is memLimit plus a small constant per run (a 32 KiB read
// buffer; runs beyond 64 are merged in passes first).
type Sorter struct {
	// Compress zstd-compresses the spilled runs (default off): a quarter
	// of the temporary disk space for some CPU. Set it before the first Add.
	Compress bool

	ext *extSort
	buf []byte
}

// NewSorter returns a Sorter that holds up to memLimit bytes in memory
// (at least 1 KiB) and spills to tmpDir.
func NewSorter(memLimit int64, tmpDir string) *Sorter {
	return &Sorter{ext: newExtSort(memLimit, tmpDir, compareEncoded, prefixEncoded)}
}

// Add adds a record; line is the line number it was read from, returned as
// the Record's Line. The record is copied.
func (s *Sorter) Add(rec *Record, line int) error {
	s.ext.compress = s.Compress
	s.buf = encodeRecordHead(s.buf[:0], rec, line)
	if err := s.ext.add2(s.buf, rec.Canonical); err != nil {
		return fmt.Errorf("sort records: %w", err)
	}
	return nil
}

// Sort ends the adding and returns the records in canonical order. The
// Iterator owns the temporary files: Close it.
func (s *Sorter) Sort() (Iterator, error) {
	m, err := s.ext.sorted()
	if err != nil {
		return nil, fmt.Errorf("sort records: %w", err)
	}
	// A replay, the Sorter's user, keeps few of the records it reads:
	// they come from slabs (see arena).
	return &sortedRecords{m: m, dec: recordDecoder{mem: arena{on: true}}}, nil
}

// Close removes the temporary files of a Sorter whose Sort is never called
// (after Sort, the Iterator owns them).
func (s *Sorter) Close() error {
	if !s.ext.done {
		s.ext.discard()
	}
	return nil
}

type sortedRecords struct {
	m   *mergeIter
	dec recordDecoder
}

func (it *sortedRecords) Next() (*Record, error) {
	item, err := it.m.next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = fmt.Errorf("sort records: %w", err)
		}
		return nil, err
	}
	rec, err := it.dec.decode(item)
	if err != nil {
		return nil, fmt.Errorf("sort records: %w", err)
	}
	return rec, nil
}

func (it *sortedRecords) Close() error { return it.m.Close() }

// The encoded form of a record, in memory and in run files:
//
//	kind byte | uvarint len(id) | id | uvarint line | flags byte |
//	str type | str start id | str end id |
//	list labels | list start labels | list end labels | canonical line
//
// str is uvarint length + bytes; list is uvarint (count+1) + strs, with 0 for
// a missing list (nil). The canonical line runs to the end of the item.
// Kind and id come first so that comparing needs no other field.

const (
	flagTombstone = 1
	flagPartial   = 2 // Record.Partial: type and labels are not set
)

// encodeRecordHead encodes all of r but its canonical line, which follows.
func encodeRecordHead(b []byte, r *Record, line int) []byte {
	b = append(b, byte(r.Kind))
	b = appendStr(b, r.ID)
	b = binary.AppendUvarint(b, uint64(line))
	var flags byte
	if r.Tombstone {
		flags |= flagTombstone
	}
	if r.partial {
		flags |= flagPartial
	}
	b = append(b, flags)
	b = appendStr(b, r.Type)
	b = appendStr(b, r.StartID)
	b = appendStr(b, r.EndID)
	b = appendList(b, r.Labels)
	b = appendList(b, r.StartLabels)
	return appendList(b, r.EndLabels)
}

// appendStr appends s (a string, or bytes still in a buffer) as a str of
// an item: its uvarint length, then its bytes.
func appendStr[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(l))+1)
	for _, s := range l {
		b = appendStr(b, s)
	}
	return b
}

// encodedKey returns the kind and id of an encoded record.
func encodedKey(b []byte) (Kind, []byte) {
	n, k := binary.Uvarint(b[1:])
	return Kind(b[0]), b[1+k : 1+k+int(n)]
}

func compareEncoded(a, b []byte) int {
	if a[0] != b[0] {
		return int(a[0]) - int(b[0])
	}
	_, ida := encodedKey(a)
	_, idb := encodedKey(b)
	return bytes.Compare(ida, idb)
}

// prefixEncoded is the kind and the first 7 bytes of the id.
func prefixEncoded(b []byte) uint64 {
	_, id := encodedKey(b)
	return uint64(b[0])<<56 | bytesPrefix(id)>>8
}

var errCorruptItem = errors.New("corrupt record item")

// recordDecoder decodes encoded records, sharing label lists between them.
type recordDecoder struct {
	lists map[string][]string
	b     []byte
	mem   arena
	err   bool
}

func (d *recordDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// uint64 reads 8 bytes little-endian.
func (d *recordDecoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.err, d.b = true, nil
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *recordDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = true, nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) list() []string {
	start := d.b
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	for i := uint64(1); i < n && !d.err; i++ {
		d.bytes()
	}
	if d.err {
		return nil
	}
	raw := start[:len(start)-len(d.b)]
	if l, ok := d.lists[string(raw)]; ok {
		return l
	}
	l := make([]string, 0, n-1)
	rest := d.b
	d.b = start
	d.uvarint()
	for i := uint64(1); i < n; i++ {
		l = append(l, string(d.bytes()))
	}
	d.b = rest
	if d.lists == nil {
		d.lists = make(map[string][]string)
	}
	if len(d.lists) < internLimit {
		d.lists[string(raw)] = l
	}
	return l
}

func (d *recordDecoder) decode(item []byte) (*Record, error) {
	if len(item) < 2 || item[0] > byte(KindRelationship) {
		return nil, errCorruptItem
	}
	d.b, d.err = item[1:], false
	r := d.mem.record()
	r.Kind = Kind(item[0])
	id := d.bytes()
	r.Line = int(d.uvarint())
	if len(d.b) == 0 {
		return nil, errCorruptItem
	}
	r.Tombstone, r.partial = d.b[0]&flagTombstone != 0, d.b[0]&flagPartial != 0
	d.b = d.b[1:]
	typ, start, end := d.bytes(), d.bytes(), d.bytes()
	r.Labels, r.StartLabels, r.EndLabels = d.list(), d.list(), d.list()
	if d.err {
		return nil, errCorruptItem
	}
	// The record, its strings and its line come from d.mem: slabs for a
	// Sorter's output (see arena), one allocation each otherwise.
	canon := d.b
	all := d.mem.string(id, typ, start, end)
	n1, n2, n3 := len(id), len(id)+len(typ), len(id)+len(typ)+len(start)
	r.ID, r.Type, r.StartID, r.EndID = all[:n1], all[n1:n2], all[n2:n3], all[n3:]
	r.Canonical = append(d.mem.bytes(len(canon)), canon...)
	return r, nil
}
