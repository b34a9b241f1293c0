package graph

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Checker is the graph integrity check of SPEC section 4 (graphref.py
// check): no node id defined twice, no relationship id defined twice (within
// or across tiers), and every relationship's start and end a node of some
// tier. Records may arrive in any order from any tier.
//
// It never holds a map of ids: node definitions and relationship endpoints
// are externally sorted together by id and merge-joined, relationship
// definitions are sorted alone, each sort with half of memLimit.
type Checker struct {
	// MaxProblems caps Report.Problems (default 1000); ProblemCount counts
	// them all.
	MaxProblems int
	// MaxWarnings caps Report.Warnings (default 100).
	MaxWarnings int

	nodes   *extSort // node definitions and endpoint references, by id
	rels    *extSort // relationship definitions, by id
	tiers   []string
	tierIdx map[string]int
	stats   map[string]*Stats
	report  Report
	// distinct ids, counted by the joins
	distinctNodes, distinctRels int64
	buf                         []byte
	labels                      []string
	done                        bool
	lp                          LineParser // completes partial records
}

// Report is the result of a check, shaped for `graph check --json`.
type Report struct {
	OK           bool      `json:"ok"`
	Problems     []Problem `json:"problems"`
	ProblemCount int64     `json:"problem_count"`
	// Warnings are relationships whose endpoint labels differ from the
	// node's labels (as graphref warns); they do not fail the check.
	Warnings     []string   `json:"warnings,omitempty"`
	WarningCount int64      `json:"warning_count"`
	Stats        CheckStats `json:"stats"`
}

// Problem is one integrity problem. Kind is "dangling", "duplicate" or
// "malformed"; Tier and Line locate the offending record (for a dangling
// endpoint the relationship, whose id is ID).
type Problem struct {
	Tier   string `json:"tier"`
	Line   int    `json:"line"`
	ID     string `json:"id,omitempty"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// CheckStats are the record counts per tier and over all tiers. As in
// graphref, a tier's Nodes and Relationships count its records, while the
// totals count distinct ids (a node defined twice counts once); label and
// type counts are sums over records.
type CheckStats struct {
	Tiers map[string]*Stats `json:"tiers"`
	Total Stats             `json:"total"`
}

// Stats counts records. A node counts once for each label it lists.
type Stats struct {
	Nodes         int64            `json:"nodes"`
	Relationships int64            `json:"relationships"`
	Labels        map[string]int64 `json:"labels"`
	Types         map[string]int64 `json:"types"`
}

func newStats() *Stats {
	return &Stats{Labels: map[string]int64{}, Types: map[string]int64{}}
}

// NewChecker returns a Checker using up to memLimit bytes of memory for its
// sorts, spilling to tmpDir.
func NewChecker(memLimit int64, tmpDir string) *Checker {
	return &Checker{
		MaxProblems: 1000,
		MaxWarnings: 100,
		nodes:       newExtSort(memLimit/2, tmpDir, compareNodeEntries, prefixEntry),
		rels:        newExtSort(memLimit/2, tmpDir, compareRelEntries, prefixEntry),
		tierIdx:     map[string]int{},
		stats:       map[string]*Stats{},
	}
}

// Entries of the node sort:
//
//	str id | class byte | uvarint tier | uvarint line | list sorted labels |
//	(references only) byte end | str relationship id | str type
//
// class 0 is a node definition, 1 a reference from a relationship endpoint
// (end 0 start, 1 end), so a node's definitions come before its references.
// Entries of the relationship sort: str id | uvarint tier | uvarint line.
const (
	classNode = 0
	classRef  = 1
)

func entryID(b []byte) ([]byte, []byte) {
	n, k := binary.Uvarint(b)
	return b[k : k+int(n)], b[k+int(n):]
}

// prefixEntry is the first 8 bytes of the id (the class only matters for
// equal ids, which compare in full).
func prefixEntry(b []byte) uint64 {
	id, _ := entryID(b)
	return bytesPrefix(id)
}

func compareNodeEntries(a, b []byte) int {
	ida, ra := entryID(a)
	idb, rb := entryID(b)
	if c := bytes.Compare(ida, idb); c != 0 {
		return c
	}
	return int(ra[0]) - int(rb[0])
}

// compareRefItems orders a Capture's endpoint items by node id, then by the
// relationship's line and the end (start first): the order in which the
// items of one tier were once added, whatever order they are added in.
func compareRefItems(a, b []byte) int {
	ida, ra := entryID(a)
	idb, rb := entryID(b)
	if c := bytes.Compare(ida, idb); c != 0 {
		return c
	}
	la, ka := binary.Uvarint(ra)
	lb, kb := binary.Uvarint(rb)
	if la != lb {
		return cmp.Compare(la, lb)
	}
	if ka <= 0 || kb <= 0 || len(ra) <= ka || len(rb) <= kb {
		return 0 // corrupt: nextRef reports it
	}
	return int(ra[ka]) - int(rb[kb])
}

func compareRelEntries(a, b []byte) int {
	ida, _ := entryID(a)
	idb, _ := entryID(b)
	return bytes.Compare(ida, idb)
}

func (c *Checker) tier(name string) (int, *Stats) {
	i, ok := c.tierIdx[name]
	if !ok {
		i = len(c.tiers)
		c.tiers = append(c.tiers, name)
		c.tierIdx[name] = i
		c.stats[name] = newStats()
	}
	return i, c.stats[name]
}

// sortedLabels returns labels sorted (graphref compares them as sorted lists).
func (c *Checker) sortedLabels(l []string) []string {
	c.labels = append(c.labels[:0], l...)
	slices.Sort(c.labels)
	return c.labels
}

// Add adds a record read from line of tier.
func (c *Checker) Add(tier string, line int, rec *Record) error {
	if c.done {
		return errors.New("check record: check already finished")
	}
	if rec.Tombstone {
		return fmt.Errorf("check record: %s %s is a tombstone", rec.Kind, rec.ID)
	}
	rec, err := c.lp.Full(rec)
	if err != nil {
		return fmt.Errorf("check record: tier %s: %w", tier, err)
	}
	ti, st := c.tier(tier)
	head := func(id string, class byte, labels []string) []byte {
		b := appendStr(c.buf[:0], id)
		b = append(b, class)
		b = binary.AppendUvarint(b, uint64(ti))
		b = binary.AppendUvarint(b, uint64(line))
		return appendList(b, c.sortedLabels(labels))
	}
	if rec.Kind == KindNode {
		st.Nodes++
		for _, l := range rec.Labels {
			st.Labels[l]++
		}
		c.buf = head(rec.ID, classNode, rec.Labels)
		if err := c.nodes.add(c.buf); err != nil {
			return fmt.Errorf("check record: %w", err)
		}
		return nil
	}
	st.Relationships++
	st.Types[rec.Type]++
	for end, id := range []string{rec.StartID, rec.EndID} {
		labels := rec.StartLabels
		if end == 1 {
			labels = rec.EndLabels
		}
		b := head(id, classRef, labels)
		b = append(b, byte(end))
		b = appendStr(b, rec.ID)
		c.buf = appendStr(b, rec.Type)
		if err := c.nodes.add(c.buf); err != nil {
			return fmt.Errorf("check record: %w", err)
		}
	}
	b := appendStr(c.buf[:0], rec.ID)
	b = binary.AppendUvarint(b, uint64(ti))
	c.buf = binary.AppendUvarint(b, uint64(line))
	if err := c.rels.add(c.buf); err != nil {
		return fmt.Errorf("check record: %w", err)
	}
	return nil
}

// Malformed records a line that could not be read as a record (the
// SyntaxError a Reader returned), so that one report lists every problem.
func (c *Checker) Malformed(tier string, line int, reason string) {
	c.tier(tier)
	c.problem(Problem{Tier: tier, Line: line, Kind: "malformed", Detail: reason})
}

func (c *Checker) problem(p Problem) {
	if c.report.roomForProblem(c.MaxProblems) {
		c.report.Problems = append(c.report.Problems, p)
	}
}

// roomForProblem counts a problem and reports whether the list, capped at
// max, has room for it, so that problems beyond the cap cost no formatting.
func (r *Report) roomForProblem(max int) bool {
	r.ProblemCount++
	return len(r.Problems) < max
}

// roomForWarning is roomForProblem for warnings.
func (r *Report) roomForWarning(max int) bool {
	r.WarningCount++
	return len(r.Warnings) < max
}

// finish completes a report: the verdict, and the stats of the tiers with
// their sums, where the node and relationship totals are the distinct ids.
func (r *Report) finish(tiers map[string]*Stats, nodes, rels int64) {
	r.OK = r.ProblemCount == 0
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	r.Stats = CheckStats{Tiers: tiers, Total: *newStats()}
	for _, st := range tiers {
		addStats(&r.Stats.Total, st)
	}
	r.Stats.Total.Nodes, r.Stats.Total.Relationships = nodes, rels
}

func addStats(dst, src *Stats) {
	dst.Nodes += src.Nodes
	dst.Relationships += src.Relationships
	for k, v := range src.Labels {
		dst.Labels[k] += v
	}
	for k, v := range src.Types {
		dst.Types[k] += v
	}
}

// Close removes the temporary files of a Checker whose Finish is never
// called.
func (c *Checker) Close() error {
	if !c.done {
		c.done = true
		c.nodes.discard()
		c.rels.discard()
	}
	return nil
}

// entry is a decoded node-sort or relationship-sort entry. Its byte slices
// alias the item and are valid until the next one; label lists are shared
// by the decoder and stay valid.
type entry struct {
	id     []byte
	class  byte
	tier   int
	line   int
	labels []string
	end    byte
	relID  []byte
	typ    []byte
}

func decodeEntry(d *recordDecoder, b []byte, node bool, tiers int) (entry, error) {
	d.b, d.err = b, false
	var e entry
	e.id = d.bytes()
	if node {
		if len(d.b) == 0 {
			return e, errCorruptItem
		}
		e.class, d.b = d.b[0], d.b[1:]
	}
	e.tier = int(d.uvarint())
	e.line = int(d.uvarint())
	if node {
		e.labels = d.list()
		if e.class == classRef {
			if len(d.b) == 0 {
				return e, errCorruptItem
			}
			e.end, d.b = d.b[0], d.b[1:]
			e.relID = d.bytes()
			e.typ = d.bytes()
		}
	}
	if d.err || e.tier >= tiers {
		return e, errCorruptItem
	}
	return e, nil
}

func (c *Checker) where(tier, line int) string {
	return c.tiers[tier] + ":" + strconv.Itoa(line)
}

// Finish runs the joins and returns the report. The Checker cannot be used
// afterwards; its temporary files are gone.
func (c *Checker) Finish() (*Report, error) {
	if c.done {
		return nil, errors.New("check graph: check already finished")
	}
	c.done = true
	defer c.rels.discard()
	if err := c.joinNodes(); err != nil {
		c.rels.discard()
		return nil, fmt.Errorf("check graph: %w", err)
	}
	if err := c.duplicateRels(); err != nil {
		return nil, fmt.Errorf("check graph: %w", err)
	}
	c.report.finish(c.stats, c.distinctNodes, c.distinctRels)
	return &c.report, nil
}

// joinNodes walks node definitions and endpoint references grouped by id:
// a second definition is a duplicate, a reference without a definition is
// dangling.
func (c *Checker) joinNodes() error {
	it, err := c.nodes.sorted()
	if err != nil {
		return err
	}
	defer it.Close()
	var (
		dec     recordDecoder
		cur     []byte // id of the current group
		defined bool
		// the group's first definition
		firstTier, firstLine int
		firstLabels          []string
	)
	for {
		item, err := it.next()
		if err == io.EOF {
			return it.Close()
		}
		if err != nil {
			return err
		}
		e, err := decodeEntry(&dec, item, true, len(c.tiers))
		if err != nil {
			return err
		}
		if cur == nil || !bytes.Equal(e.id, cur) {
			cur = append(cur[:0], e.id...)
			defined = false
		}
		switch {
		case e.class == classNode && !defined:
			defined = true
			firstTier, firstLine, firstLabels = e.tier, e.line, e.labels
			c.distinctNodes++
		case e.class == classNode:
			if c.report.roomForProblem(c.MaxProblems) {
				c.report.Problems = append(c.report.Problems, Problem{Tier: c.tiers[e.tier], Line: e.line,
					ID: string(e.id), Kind: "duplicate", Detail: fmt.Sprintf("node %s defined at %s and %s",
						e.id, c.where(firstTier, firstLine), c.where(e.tier, e.line))})
			}
		case !defined:
			if c.report.roomForProblem(c.MaxProblems) {
				c.report.Problems = append(c.report.Problems, Problem{Tier: c.tiers[e.tier], Line: e.line,
					ID: string(e.relID), Kind: "dangling", Detail: fmt.Sprintf("relationship %s (%s) at %s: %s node %s does not exist",
						e.relID, e.typ, c.where(e.tier, e.line), endName(e.end), e.id)})
			}
		case !slices.Equal(e.labels, firstLabels):
			if c.report.roomForWarning(c.MaxWarnings) {
				c.report.Warnings = append(c.report.Warnings, fmt.Sprintf("relationship %s at %s: %s labels %s differ from node %s's %s",
					e.relID, c.where(e.tier, e.line), endName(e.end), labelList(e.labels), e.id, labelList(firstLabels)))
			}
		}
	}
}

// duplicateRels reports relationship ids defined more than once.
func (c *Checker) duplicateRels() error {
	it, err := c.rels.sorted()
	if err != nil {
		return err
	}
	defer it.Close()
	var dec recordDecoder
	var cur []byte
	var firstTier, firstLine int
	for {
		item, err := it.next()
		if err == io.EOF {
			return it.Close()
		}
		if err != nil {
			return err
		}
		e, err := decodeEntry(&dec, item, false, len(c.tiers))
		if err != nil {
			return err
		}
		if cur != nil && bytes.Equal(e.id, cur) {
			if c.report.roomForProblem(c.MaxProblems) {
				c.report.Problems = append(c.report.Problems, Problem{Tier: c.tiers[e.tier], Line: e.line,
					ID: string(e.id), Kind: "duplicate", Detail: fmt.Sprintf("relationship %s defined at %s and %s",
						e.id, c.where(firstTier, firstLine), c.where(e.tier, e.line))})
			}
			continue
		}
		cur, firstTier, firstLine = append(cur[:0], e.id...), e.tier, e.line
		c.distinctRels++
	}
}

func endName(end byte) string {
	if end == 0 {
		return "start"
	}
	return "end"
}

// labelList writes labels as graphref does (a compact JSON list).
func labelList(l []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(appendString(nil, []byte(s)))
	}
	b.WriteByte(']')
	return b.String()
}
