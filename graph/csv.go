package graph

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file writes a graph as CSV files for neo4j-admin database import
// (restore --format neo4j-csv):
//
//	nodes_<labels>.csv         :ID, <property columns>, :LABEL
//	relationships_<TYPE>.csv   :START_ID, :END_ID, :TYPE, strata_id:string, <property columns>
//
// One file per group: a node's group is its set of labels (sorted, duplicates
// dropped), a relationship's its type. The files are meant for one
// `neo4j-admin database import full` run with the default options
// (--id-type=string, --array-delimiter=';', --quote='"',
// --ignore-empty-strings=false, --normalize-types=true), plus
// --multiline-fields=true if any value holds a line break.
//
// Header. :ID has no name, so node ids link relationships but are not stored
// as a property. neo4j-admin has no column for a relationship id, so the
// source id goes into the property column strata_id:string (strata_id_2, _3
// ... if a relationship property of that type is already called strata_id):
// the export loses nothing. :LABEL holds the group's labels joined by ';'
// (neo4j-admin splits it on the array delimiter); a label that is empty or
// contains ';' cannot be written that way and is an error.
//
// Property columns are sorted by key (bytes of the UTF-8 key) and typed
// `key:type`. The type is inferred from every non-null value the key has in
// the group (one pass over the input, see csvKind):
//
//   - integers that fit int64: long, written as the literal digits;
//   - integers beyond int64: string holding the exact digits (neo4j has no
//     wider integer, and a double would round them);
//   - other numbers: double, written as their literal text (canonical form,
//     e.g. 1.50 or 1E-7); a literal beyond the range of a double (1E+400,
//     1E-400) is treated like a big integer: string with the exact text;
//   - true/false: boolean; strings: string;
//   - a non-empty list whose elements are all long, all double, all boolean
//     or all string: long[], double[], boolean[] or string[], the elements
//     joined by ';'. A string list is an array only if the join splits back
//     exactly: no element contains ';' and the list is not [""] (which would
//     be an empty field). Otherwise, and for empty lists, lists with null,
//     nested or mixed elements, and for maps: string holding the value's
//     compact JSON text;
//   - a key whose values fall in more than one of the classes above in the
//     group (say 1 and "1", or 1 and 2.5, or [1] and 1): string holding the
//     compact JSON text of every value, so 1 and "1" stay distinguishable
//     ("1" is written with its quotes);
//   - null (or a key the record lacks): an empty field, which neo4j-admin
//     reads as no property. An empty string is written as "" (quoted), which
//     neo4j-admin reads as the empty string.
//
// A string holding a lone surrogate (possible in JSON, not in UTF-8) is
// written as its JSON text, so it counts as a JSON-text value in the rules
// above.
//
// Fields are quoted as RFC 4180 says (a field is quoted if it holds a comma,
// a quote, CR or LF, or starts with a space or tab; quotes are doubled), as
// encoding/csv does, except that an empty string is written as "" to keep it
// apart from null, which encoding/csv's Writer cannot do.
//
// File names: the group's labels joined by '_' (nodes.csv for nodes without
// labels) or the type. Characters outside [A-Za-z0-9_-] become '_' and then
// an '_' and 8 hex digits of the SHA-256 of the group key are appended; so
// are they for groups whose names would collide (ignoring case, for
// case-insensitive file systems: Person and PERSON, or the labels [A_B] and
// [A, B]) and for names longer than 100 bytes (cut to 100). Column names are
// the keys, except that a key neo4j-admin's header syntax cannot carry
// (empty, or holding '(', ')', '{', '}', a control character or a lone
// surrogate) is rewritten the same way.
//
// Memory stays bounded whatever the graph's size: records are spooled to one
// temporary file per group (buffers of all groups together hold at most
// csvSpoolMemory bytes; the largest are flushed first), and only the groups'
// key sets and inferred types stay in memory. A second pass copies each
// group's spool into its CSV file.

// csvSpoolMemory bounds the bytes of records buffered before they are
// flushed to the spool files.
const csvSpoolMemory = 32 << 20

// csvArrayDelimiter is neo4j-admin's default --array-delimiter.
const csvArrayDelimiter = ';'

// WriteNeo4jCSV writes the records of it (in canonical order, without
// tombstones) as neo4j-admin import CSV files in dir (created if needed),
// spooling to temporary files in tmpDir ("" for the system default), and
// returns the paths of the files written, sorted. It does not close it. On
// error, the files it wrote are removed.
func WriteNeo4jCSV(dir string, it Iterator, tmpDir string) (files []string, err error) {
	return writeNeo4jCSV(dir, it, tmpDir, csvSpoolMemory)
}

// csvKind classifies a property value; a column's type is the union of the
// kinds of its values (a bit set).
type csvKind uint8

const (
	csvLong      csvKind = iota // integer within int64
	csvDouble                   // other number within double range
	csvBool                     // true or false
	csvString                   // string, written decoded
	csvText                     // written as its JSON text (big numbers, maps, other lists)
	csvLongArr                  // list of csvLong
	csvDoubleArr                // list of csvDouble
	csvBoolArr                  // list of csvBool
	csvStringArr                // list of csvString that survives the ';' join
	csvNull                     // null: no property
)

// csvTypes are the header types of columns whose values all have one kind.
var csvTypes = [...]string{
	csvLong: "long", csvDouble: "double", csvBool: "boolean", csvString: "string", csvText: "string",
	csvLongArr: "long[]", csvDoubleArr: "double[]", csvBoolArr: "boolean[]", csvStringArr: "string[]",
}

// csvColumn is a property key of a group.
type csvColumn struct {
	key   string // decoded key
	kinds uint16 // bit set of the csvKinds seen
	// Set when writing:
	index int     // position among the group's property columns
	mode  csvKind // how values are written (csvText for mixed kinds)
}

// csvGroup is the records of one output file.
type csvGroup struct {
	kind   Kind
	key    string   // nodes: the label set, length-prefixed; relationships: the type
	labels []string // nodes: sorted, distinct
	seq    int      // creation order: names the spool file
	cols   map[string]*csvColumn
	buf    []byte // spooled records not yet flushed
	spool  string // spool file path, once flushed
	name   string // output file name
}

type csvWriter struct {
	tmp      string // spool directory
	memLimit int
	lp       LineParser // completes partial records
	held     int
	nodes    map[string]*csvGroup
	rels     map[string]*csvGroup
	groups   []*csvGroup
	x        extractor
	keyBuf   []byte
	labelBuf []string
}

func writeNeo4jCSV(dir string, it Iterator, tmpDir string, memLimit int) (files []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("neo4j csv: %w", err)
	}
	tmp, err := os.MkdirTemp(tmpDir, "strata-csv-")
	if err != nil {
		return nil, fmt.Errorf("neo4j csv: %w", err)
	}
	defer os.RemoveAll(tmp)
	w := &csvWriter{tmp: tmp, memLimit: memLimit, nodes: map[string]*csvGroup{}, rels: map[string]*csvGroup{}}
	if err := w.spoolAll(it); err != nil {
		return nil, err
	}
	if err := w.nameFiles(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, f := range files {
				os.Remove(f)
			}
			files = nil
		}
	}()
	slices.SortFunc(w.groups, func(a, b *csvGroup) int { return strings.Compare(a.name, b.name) })
	for _, g := range w.groups {
		path := filepath.Join(dir, g.name)
		files = append(files, path)
		if err := w.writeGroup(g, path); err != nil {
			return files, err
		}
	}
	return files, nil
}

// spoolAll reads the records, infers the column types and spools the
// records to their groups.
func (w *csvWriter) spoolAll(it Iterator) error {
	for {
		rec, err := it.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if rec.Tombstone {
			return fmt.Errorf("neo4j csv: tombstone for %s %s in a state", rec.Kind, rec.ID)
		}
		if rec, err = w.lp.Full(rec); err != nil {
			return fmt.Errorf("neo4j csv: %w", err)
		}
		g, err := w.group(rec)
		if err != nil {
			return err
		}
		var props []byte
		if len(rec.Canonical) > 0 {
			props, _ = objectField(rec.Canonical, `"properties"`)
		}
		if len(props) <= 2 { // absent or {}
			props = nil
		}
		for i := 1; props != nil && props[i] != '}'; {
			k := skipString(props, i)
			e := skipValue(props, k+1)
			kind := w.classify(props[k+1 : e])
			if kind != csvNull {
				col := g.cols[string(props[i:k])]
				if col == nil {
					col = &csvColumn{key: string(w.x.decode(props[i:k]))}
					g.cols[string(props[i:k])] = col
				}
				col.kinds |= 1 << kind
			}
			i = e
			if props[i] == ',' {
				i++
			}
		}
		n := len(g.buf)
		g.buf = appendStr(g.buf, rec.ID)
		if rec.Kind == KindRelationship {
			g.buf = appendStr(g.buf, rec.StartID)
			g.buf = appendStr(g.buf, rec.EndID)
		}
		g.buf = appendStr(g.buf, props)
		w.held += len(g.buf) - n
		if w.held > w.memLimit {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// group returns the record's group, creating it if new.
func (w *csvWriter) group(rec *Record) (*csvGroup, error) {
	if rec.Kind == KindRelationship {
		if g := w.rels[rec.Type]; g != nil {
			return g, nil
		}
		g := &csvGroup{kind: KindRelationship, key: rec.Type}
		w.rels[rec.Type] = g
		return w.addGroup(g), nil
	}
	labels := rec.Labels
	if !slices.IsSorted(labels) || hasAdjacentDup(labels) {
		labels = slices.Compact(slices.Sorted(slices.Values(labels)))
	}
	key := w.keyBuf[:0]
	for _, l := range labels {
		key = appendStr(key, l)
	}
	w.keyBuf = key
	if g := w.nodes[string(key)]; g != nil {
		return g, nil
	}
	for _, l := range labels {
		if l == "" || strings.IndexByte(l, csvArrayDelimiter) >= 0 {
			return nil, fmt.Errorf("neo4j csv: node %s: label %q cannot be written to a :LABEL column (empty, or holds the array delimiter %q)", rec.ID, l, csvArrayDelimiter)
		}
	}
	g := &csvGroup{kind: KindNode, key: string(key), labels: slices.Clone(labels)}
	w.nodes[g.key] = g
	return w.addGroup(g), nil
}

func hasAdjacentDup(l []string) bool {
	for i := 1; i < len(l); i++ {
		if l[i] == l[i-1] {
			return true
		}
	}
	return false
}

func (w *csvWriter) addGroup(g *csvGroup) *csvGroup {
	g.seq = len(w.groups)
	g.cols = map[string]*csvColumn{}
	w.groups = append(w.groups, g)
	return g
}

// flush writes the largest buffers to their spool files until at most half
// the memory limit is held.
func (w *csvWriter) flush() error {
	var full []*csvGroup
	for _, g := range w.groups {
		if len(g.buf) > 0 {
			full = append(full, g)
		}
	}
	slices.SortFunc(full, func(a, b *csvGroup) int { return len(b.buf) - len(a.buf) })
	for _, g := range full {
		if w.held <= w.memLimit/2 {
			break
		}
		if g.spool == "" {
			g.spool = filepath.Join(w.tmp, strconv.Itoa(g.seq))
		}
		f, err := os.OpenFile(g.spool, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("neo4j csv: spool: %w", err)
		}
		_, err = f.Write(g.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("neo4j csv: spool: %w", err)
		}
		w.held -= len(g.buf)
		if cap(g.buf) > 64<<10 {
			g.buf = nil // let a large buffer go
		} else {
			g.buf = g.buf[:0]
		}
	}
	return nil
}

// classify returns the kind of the canonical JSON value v.
func (w *csvWriter) classify(v []byte) csvKind {
	switch v[0] {
	case 'n':
		return csvNull
	case 't', 'f':
		return csvBool
	case '"':
		if w.loneSurrogate(v) {
			return csvText
		}
		return csvString
	case '{':
		return csvText
	case '[':
		return w.classifyList(v)
	}
	return classifyNumber(v)
}

// loneSurrogate reports whether the canonical string literal v holds a lone
// surrogate (canonical text writes such a string ASCII-escaped, so it holds
// a \ud8xx..\udfxx escape).
func (w *csvWriter) loneSurrogate(v []byte) bool {
	return bytes.Contains(v, []byte(`\ud`)) && hasSurrogate(w.x.decode(v))
}

// classifyNumber classifies a canonical JSON number.
//
// An integer beyond int64 is csvText (a string holding the exact digits):
// neo4j-admin's long would reject it and a double would round it. So is a
// non-integer outside the range of a double, which would become infinity
// or zero.
func classifyNumber(v []byte) csvKind {
	if bytes.IndexAny(v, ".eE") < 0 {
		if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
			return csvText
		}
		return csvLong
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) {
		return csvText
	}
	if f == 0 {
		// Underflow gives 0 without an error: the mantissa must be zero too.
		m := v
		if e := bytes.IndexAny(m, "eE"); e >= 0 {
			m = m[:e]
		}
		if bytes.ContainsAny(m, "123456789") {
			return csvText
		}
	}
	return csvDouble
}

// classifyList returns the array kind of a list, or csvText if it cannot be
// a neo4j array column value (see the file comment).
func (w *csvWriter) classifyList(v []byte) csvKind {
	if len(v) == 2 { // []: an empty field would read back as no property
		return csvText
	}
	var elem csvKind
	n := 0
	for i := 1; v[i] != ']'; n++ {
		if v[i] == '[' || v[i] == '{' {
			return csvText
		}
		e := skipValue(v, i)
		k := w.classify(v[i:e])
		switch {
		case k != csvLong && k != csvDouble && k != csvBool && k != csvString:
			return csvText
		case n > 0 && k != elem:
			return csvText
		case k == csvString && bytes.IndexByte(v[i:e], csvArrayDelimiter) >= 0:
			return csvText
		}
		elem = k
		i = e
		if v[i] == ',' {
			i++
		}
	}
	if n == 1 && elem == csvString && string(v) == `[""]` {
		return csvText
	}
	return csvLongArr + elem
}

// nameFiles gives every group its file name (see the file comment).
func (w *csvWriter) nameFiles() error {
	type named struct {
		g    *csvGroup
		stem string
		ok   bool
	}
	byStem := map[string][]named{}
	for _, g := range w.groups {
		stem := g.key
		if g.kind == KindNode {
			stem = strings.Join(g.labels, "_")
		}
		safe, ok := safeStem(stem)
		k := g.kind.String() + "\x00" + strings.ToLower(safe)
		byStem[k] = append(byStem[k], named{g, safe, ok})
	}
	seen := map[string]bool{}
	for _, ns := range byStem {
		for _, n := range ns {
			stem := n.stem
			if !n.ok || len(ns) > 1 {
				stem += "_" + shortHash(n.g.kind, n.g.key)
			}
			switch {
			case n.g.kind == KindRelationship:
				n.g.name = "relationships_" + stem + ".csv"
			case stem == "":
				n.g.name = "nodes.csv"
			default:
				n.g.name = "nodes_" + stem + ".csv"
			}
			lower := strings.ToLower(n.g.name)
			if seen[lower] {
				return fmt.Errorf("neo4j csv: two groups would both be written to %s", n.g.name)
			}
			seen[lower] = true
		}
	}
	return nil
}

// maxStem bounds the group part of a file name (file names are limited to
// 255 bytes on most file systems).
const maxStem = 100

// safeStem replaces the characters outside [A-Za-z0-9_-] by '_' and cuts the
// result to maxStem bytes; ok is false if it changed anything.
func safeStem(s string) (string, bool) {
	ok := true
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			b.WriteRune(r)
			continue
		}
		b.WriteByte('_')
		ok = false
	}
	out := b.String()
	if len(out) > maxStem {
		out, ok = out[:maxStem], false
	}
	return out, ok
}

// shortHash is 8 hex digits of the SHA-256 of a group's kind and key.
func shortHash(kind Kind, key string) string {
	h := sha256.Sum256(append([]byte{byte(kind)}, key...))
	return hex.EncodeToString(h[:4])
}

// columnName returns the header name of a property key: the key itself, or,
// if neo4j-admin's header syntax cannot carry it (it cuts "(group)" and
// "{options}" out of a header entry, and an empty name is no property), the
// key with the offending characters replaced and a hash appended.
func columnName(key string) string {
	ok := key != "" && utf8.ValidString(key)
	var b strings.Builder
	for i := 0; i < len(key); {
		r, n := utf8.DecodeRuneInString(key[i:])
		bad := r == utf8.RuneError && n <= 1 || r < 0x20 || r == 0x7f ||
			r == '(' || r == ')' || r == '{' || r == '}'
		if bad {
			b.WriteByte('_')
			ok = false
		} else {
			b.WriteString(key[i : i+n])
		}
		i += n
	}
	if ok {
		return key
	}
	h := sha256.Sum256([]byte(key))
	return b.String() + "_" + hex.EncodeToString(h[:4])
}

// header returns the group's header fields and sets every column's index
// and mode.
func (g *csvGroup) header() ([]string, []*csvColumn, error) {
	cols := make([]*csvColumn, 0, len(g.cols))
	for _, c := range g.cols {
		cols = append(cols, c)
	}
	slices.SortFunc(cols, func(a, b *csvColumn) int { return strings.Compare(a.key, b.key) })
	names := map[string]bool{}
	props := make([]string, len(cols))
	for i, c := range cols {
		c.index = i
		c.mode = csvText
		typ := "string"
		for k := csvLong; k < csvNull; k++ {
			if c.kinds == 1<<k {
				c.mode, typ = k, csvTypes[k]
			}
		}
		name := columnName(c.key)
		if names[name] {
			return nil, nil, fmt.Errorf("neo4j csv: two property keys of %s would both be column %q", g.name, name)
		}
		names[name] = true
		props[i] = name + ":" + typ
	}
	var h []string
	if g.kind == KindNode {
		h = append(h, ":ID")
		h = append(h, props...)
		return append(h, ":LABEL"), cols, nil
	}
	idCol := "strata_id"
	for n := 2; names[idCol]; n++ {
		idCol = "strata_id_" + strconv.Itoa(n)
	}
	h = append(h, ":START_ID", ":END_ID", ":TYPE", idCol+":string")
	return append(h, props...), cols, nil
}

// writeGroup writes the group's CSV file from its spool and buffer.
func (w *csvWriter) writeGroup(g *csvGroup, path string) error {
	header, cols, err := g.header()
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("neo4j csv: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	var line []byte
	for i, h := range header {
		if i > 0 {
			line = append(line, ',')
		}
		line = appendCSVField(line, []byte(h))
	}
	line = append(line, '\n')
	if _, err := bw.Write(line); err != nil {
		return fmt.Errorf("neo4j csv: %w", err)
	}
	rw := rowWriter{w: w, g: g, cols: cols, fields: make([][]byte, len(cols)), set: make([]bool, len(cols))}
	// The spool holds the oldest records, the buffer the newest.
	if g.spool != "" {
		sf, err := os.Open(g.spool)
		if err != nil {
			return fmt.Errorf("neo4j csv: spool: %w", err)
		}
		err = rw.copy(bufio.NewReaderSize(sf, 256<<10), bw)
		sf.Close()
		os.Remove(g.spool)
		if err != nil {
			return err
		}
	}
	if err := rw.copy(bufio.NewReader(bytes.NewReader(g.buf)), bw); err != nil {
		return err
	}
	g.buf = nil
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("neo4j csv: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("neo4j csv: %w", err)
	}
	return nil
}

// rowWriter turns spooled records into CSV rows.
type rowWriter struct {
	w      *csvWriter
	g      *csvGroup
	cols   []*csvColumn
	fields [][]byte  // property values of the row (reused)
	set    []bool    // whether fields[i] is a value (else null)
	rec    [4][]byte // id, then start and end for relationships, then properties
	nf     int       // fields in rec
	labels []byte
	line   []byte
}

func (rw *rowWriter) copy(r *bufio.Reader, out *bufio.Writer) error {
	rw.nf = 2
	if rw.g.kind == KindRelationship {
		rw.nf = 4
	} else {
		rw.labels = []byte(strings.Join(rw.g.labels, string(csvArrayDelimiter)))
	}
	for {
		for i := 0; i < rw.nf; i++ {
			n, err := binary.ReadUvarint(r)
			if err != nil {
				if i == 0 && errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("neo4j csv: read spool: %w", err)
			}
			rw.rec[i] = slices.Grow(rw.rec[i][:0], int(n))[:n]
			if _, err := io.ReadFull(r, rw.rec[i]); err != nil {
				return fmt.Errorf("neo4j csv: read spool: %w", err)
			}
		}
		rw.row()
		if _, err := out.Write(rw.line); err != nil {
			return fmt.Errorf("neo4j csv: %w", err)
		}
	}
}

// row formats the record in rw.rec as rw.line.
func (rw *rowWriter) row() {
	clear(rw.set)
	props := rw.rec[rw.nf-1]
	for i := 1; len(props) > 0 && props[i] != '}'; {
		k := skipString(props, i)
		e := skipValue(props, k+1)
		v := props[k+1 : e]
		if v[0] != 'n' { // null: no property
			c := rw.g.cols[string(props[i:k])]
			rw.fields[c.index] = rw.value(rw.fields[c.index][:0], c.mode, v)
			rw.set[c.index] = true
		}
		i = e
		if props[i] == ',' {
			i++
		}
	}
	line := rw.line[:0]
	if rw.g.kind == KindNode {
		line = appendCSVField(line, rw.rec[0])
	} else {
		line = appendCSVField(line, rw.rec[1])
		line = append(line, ',')
		line = appendCSVField(line, rw.rec[2])
		line = append(line, ',')
		line = appendCSVField(line, []byte(rw.g.key))
		line = append(line, ',')
		line = appendCSVField(line, rw.rec[0])
	}
	for i := range rw.cols {
		line = append(line, ',')
		if rw.set[i] {
			line = appendCSVField(line, rw.fields[i])
		}
	}
	if rw.g.kind == KindNode {
		line = append(line, ',')
		if len(rw.labels) > 0 {
			line = appendCSVField(line, rw.labels)
		}
	}
	rw.line = append(line, '\n')
}

// value appends the field text of the canonical value v in a column of the
// given mode.
func (rw *rowWriter) value(dst []byte, mode csvKind, v []byte) []byte {
	switch mode {
	case csvString:
		return append(dst, rw.w.x.decode(v)...)
	case csvLongArr, csvDoubleArr, csvBoolArr, csvStringArr:
		for i, n := 1, 0; v[i] != ']'; n++ {
			e := skipValue(v, i)
			if n > 0 {
				dst = append(dst, csvArrayDelimiter)
			}
			if mode == csvStringArr {
				dst = append(dst, rw.w.x.decode(v[i:e])...)
			} else {
				dst = append(dst, v[i:e]...)
			}
			i = e
			if v[i] == ',' {
				i++
			}
		}
		return dst
	}
	// long, double, boolean: the literal; csvText: the JSON text.
	return append(dst, v...)
}

// appendCSVField appends f as one CSV field, quoted as RFC 4180 and
// encoding/csv's Writer do, except that an empty field is written as "" (a
// null value is written by appending nothing at all).
func appendCSVField(b, f []byte) []byte {
	if len(f) == 0 {
		return append(b, '"', '"')
	}
	if !bytes.ContainsAny(f, ",\"\r\n") && f[0] != ' ' && f[0] != '\t' && string(f) != `\.` {
		return append(b, f...)
	}
	b = append(b, '"')
	for {
		i := bytes.IndexByte(f, '"')
		if i < 0 {
			break
		}
		b = append(b, f[:i+1]...)
		b = append(b, '"')
		f = f[i+1:]
	}
	b = append(b, f...)
	return append(b, '"')
}
