package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/oplog"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// Problem kinds. Every kind but the two warnings is damage: Check's result
// is not OK and `strata check` exits 4.
const (
	// KindHashMismatch: an object's stored bytes do not hash to its name
	// (any object but config; packs only with read-data).
	KindHashMismatch = "hash-mismatch"
	// KindUnauthenticated: the AEAD rejects the object (damaged bytes, or
	// bytes sealed for another prefix or repository).
	KindUnauthenticated = "unauthenticated"
	// KindUndecodable: the object authenticates but its frame or document
	// does not decode (or, for key files, does not parse).
	KindUndecodable = "undecodable"
	// KindMissingPack: a live index object names a pack that is not stored.
	KindMissingPack = "missing-pack"
	// KindIndexRange: an index entry lies past the end of its pack.
	KindIndexRange = "index-range"
	// KindPackHeader: a pack's header cannot be read, authenticated or parsed.
	KindPackHeader = "pack-header"
	// KindIndexMismatch: a pack's header and the index disagree on its blobs.
	KindIndexMismatch = "index-mismatch"
	// KindMissingBlob: a snapshot needs a blob no live index object lists.
	KindMissingBlob = "missing-blob"
	// KindUnreadableBlob: a snapshot needs a blob whose every copy is in a
	// missing or damaged pack, or fails to load.
	KindUnreadableBlob = "unreadable-blob"
	// KindBadTree: a tree blob loads but is not a valid tree (or a graph
	// tier's tree lacks its base or a layer file).
	KindBadTree = "bad-tree"
	// KindSizeMismatch: a file node's size is not the sum of its blobs'.
	KindSizeMismatch = "size-mismatch"
	// KindBadBlob (read-data): a blob in a pack fails to decrypt,
	// decompress or hash to its id.
	KindBadBlob = "bad-blob"
	// KindOplogHeader: a segment's header does not match its key, or its
	// level and tail disagree.
	KindOplogHeader = "oplog-header"
	// KindOplogGap: records are missing from a generation (the object is
	// "oplog/<generation>", the detail gives the lsn range).
	KindOplogGap = "oplog-gap"
	// KindOplogChain: a segment does not continue the one before it (prev,
	// lsn continuity, ts, or a partial overlap).
	KindOplogChain = "oplog-chain"
	// KindOplogOverlap: a segment covered by another one holds different
	// records for the same lsns.
	KindOplogOverlap = "oplog-overlap"
	// KindOplogParent: a generation >= 2 without a valid parent.
	KindOplogParent = "oplog-parent"

	// KindUnreferenced (warning): a pack no live index object lists. An
	// interrupted backup leaves these (SPEC section 8) and prune removes
	// them; nothing is lost, so it is not damage (restic treats it alike).
	KindUnreferenced = "unreferenced"
	// KindStray (warning): a key outside the repository layout.
	KindStray = "stray"
)

// Problem is one finding: the object it concerns (a backend key such as
// "data/ab/ab12…", or "oplog/0000000001" for a generation), its kind and
// what exactly is wrong.
type Problem struct {
	Object string `json:"object"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Subset selects the packs a partial read-data reads.
type Subset struct {
	// N and M (1 <= N <= M): the packs whose id's first byte mod M is
	// N-1, as restic's --read-data-subset n/m: runs 1/M .. M/M read every
	// pack once.
	N, M int
	// Percent (0 < Percent <= 100) selects a random share of the packs, at
	// least one, drawn with Seed (0: Check draws a seed and reports it).
	Percent float64
	Seed    uint64
}

// ParseSubset parses "N/M" or "P%".
func ParseSubset(s string) (Subset, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return Subset{}, fmt.Errorf("read-data subset %q: want a percentage in (0, 100]", s)
		}
		return Subset{Percent: f}, nil
	}
	a, b, ok := strings.Cut(s, "/")
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || m < 1 || n > m || m > 256 {
		return Subset{}, fmt.Errorf("read-data subset %q: want N/M with 1 <= N <= M <= 256, or P%%", s)
	}
	return Subset{N: n, M: m}, nil
}

// String returns the subset as ParseSubset reads it.
func (s Subset) String() string {
	if s.Percent > 0 {
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	return fmt.Sprintf("%d/%d", s.N, s.M)
}

// CheckProgress hears how far Check has come. Calls may come from several
// goroutines at once.
type CheckProgress interface {
	// Stage starts a stage ("objects", "packs", "snapshots", "oplog",
	// "read-data") of total items (0: not known) and totalBytes to read (0:
	// not known).
	Stage(name string, total int, totalBytes int64)
	// Done counts items of the current stage finished and bytes read.
	Done(items int, bytes int64)
}

type noCheckProgress struct{}

func (noCheckProgress) Stage(string, int, int64) {}
func (noCheckProgress) Done(int, int64)          {}

// CheckOptions tune Check.
type CheckOptions struct {
	// ReadData reads every pack whole: its bytes must hash to its name and
	// every blob must decrypt and hash to its id.
	ReadData bool
	// Subset, when set, reads only these packs (it implies ReadData).
	Subset *Subset
	// Workers bounds concurrent loads (default: the backend's Connections,
	// else 4). With read-data each worker holds one pack in memory.
	Workers int
	// TmpDir holds check's private index cache (default os.TempDir()).
	TmpDir string
	// Progress is told the stages (default: nothing).
	Progress CheckProgress
}

// CheckResult is what Check found: damage in Problems (OK when there is
// none), warnings apart, and what it looked at.
type CheckResult struct {
	OK       bool      `json:"ok"`
	Problems []Problem `json:"problems"`
	Warnings []Problem `json:"warnings"`
	// Objects counts the key files and unpacked objects checked (oplog
	// segments are in Segments).
	Objects      int   `json:"objects"`
	IndexObjects int   `json:"index_objects"`
	Packs        int   `json:"packs"`
	Blobs        int64 `json:"blobs"`
	Snapshots    int   `json:"snapshots"`
	Trees        int64 `json:"trees"`
	Generations  int   `json:"generations"`
	Segments     int   `json:"segments"`
	// ReadData is "", "all" or the subset read; Seed the seed of a
	// percentage subset.
	ReadData  string `json:"read_data,omitempty"`
	Seed      uint64 `json:"seed,omitempty"`
	PacksRead int    `json:"packs_read"`
	BlobsRead int64  `json:"blobs_read"`
	// BytesRead is everything check loaded from the store.
	BytesRead int64 `json:"bytes_read"`
}

// Check verifies the repository's structure (restic's check): every object
// hashes to its name and authenticates, the index agrees with the packs'
// headers, every snapshot's trees load and every blob it needs is indexed,
// every oplog generation chains without gaps. With ReadData (or a Subset)
// it then reads packs whole. Damage goes into the result; the error is for
// operational failures (the store unreachable, the context cancelled).
//
// Check only reads. It does not take a lease, so a prune that deletes while
// it runs can make it report packs missing that the index no longer needs:
// run it again when in doubt.
func Check(ctx context.Context, r *repo.Repository, opts CheckOptions) (*CheckResult, error) {
	c := &checker{
		r: r, be: r.Backend(), opts: opts, progress: opts.Progress,
		res:   &CheckResult{Problems: []Problem{}, Warnings: []Problem{}},
		packs: map[chunk.ID]int64{}, indexed: map[chunk.ID]bool{}, badPacks: map[chunk.ID]bool{},
		objects: map[string][]listed{}, segments: map[uint64][]oplog.Segment{},
		indexFiles: map[chunk.ID]*index.File{}, superseded: map[chunk.ID]bool{},
		heartbeats: map[uint64]*hbSeen{}, pruned: map[uint64]map[uint64]bool{}, trees: map[chunk.ID]bool{},
	}
	if c.progress == nil {
		c.progress = noCheckProgress{}
	}
	c.workers = opts.Workers
	if c.workers <= 0 {
		c.workers = backend.Connections(c.be, 4)
	}
	tmp, err := os.MkdirTemp(opts.TmpDir, "strata-check-")
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer os.RemoveAll(tmp)
	if c.blobs, err = index.OpenCache(filepath.Join(tmp, "index.db")); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	defer c.blobs.Close()

	for _, step := range []func(context.Context) error{
		c.list, c.checkConfig, c.checkObjects, c.checkPacks, c.checkSnapshots, c.checkOplog, c.readData,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	c.res.BytesRead = c.bytesRead.Load()
	for _, l := range [][]Problem{c.res.Problems, c.res.Warnings} {
		sort.Slice(l, func(i, j int) bool {
			a, b := l[i], l[j]
			if a.Object != b.Object {
				return a.Object < b.Object
			}
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			return a.Detail < b.Detail
		})
	}
	c.res.OK = len(c.res.Problems) == 0
	return c.res, nil
}

// listed is one key of the repository listing.
type listed struct {
	key    string
	prefix string // also the AD
	id     chunk.ID
	gen    uint64 // heartbeats: the generation
}

type hbSeen struct {
	key string
	hb  oplog.Heartbeat
}

type checker struct {
	r        *repo.Repository
	be       backend.Backend
	opts     CheckOptions
	workers  int
	progress CheckProgress
	blobs    *index.Cache // built from the live, authentic index objects

	mu         sync.Mutex // guards everything below
	res        *CheckResult
	packs      map[chunk.ID]int64 // data/ as listed: id → size
	indexed    map[chunk.ID]bool  // packs a live index object names
	badPacks   map[chunk.ID]bool  // missing, or damaged as the structure check saw
	objects    map[string][]listed
	segments   map[uint64][]oplog.Segment
	indexFiles map[chunk.ID]*index.File // authentic index objects; nil value: decoded, not kept
	keptBytes  int
	superseded map[chunk.ID]bool
	snaps      []snapshot.Entry
	heartbeats map[uint64]*hbSeen         // the newest per generation
	pruned     map[uint64]map[uint64]bool // generation → last lsns of segments deletion records removed (not compaction)
	trees      map[chunk.ID]bool          // trees visited

	bytesRead atomic.Int64
}

// keepIndexBytes bounds the index objects kept decoded between the two
// passes over the index; beyond it the second pass loads them again.
const keepIndexBytes = 64 << 20

// report records a problem: c.damage into the result, a collector's add
// into a generation's walk until it is sure of them.
type report func(object, kind, format string, a ...any)

// collector gathers problems; safe for concurrent use.
type collector struct {
	mu sync.Mutex
	ps []Problem
}

func (cl *collector) add(object, kind, format string, a ...any) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.ps = append(cl.ps, Problem{Object: object, Kind: kind, Detail: fmt.Sprintf(format, a...)})
}

func (c *checker) damage(object, kind, format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Problems = append(c.res.Problems, Problem{Object: object, Kind: kind, Detail: fmt.Sprintf(format, a...)})
}

func (c *checker) warn(object, kind, format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Warnings = append(c.res.Warnings, Problem{Object: object, Kind: kind, Detail: fmt.Sprintf(format, a...)})
}

// forEachLimit runs fn for every item, n at a time; the first error stops it.
func forEachLimit[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, it) })
	}
	return g.Wait()
}

// unpackedPrefixes are the prefixes of sealed objects named <prefix>/<id>,
// and keys/ (plaintext), checked alike by checkObjects.
var unpackedPrefixes = map[string]bool{
	"keys": true, repo.PrefixIndex: true, repo.PrefixSnapshots: true, repo.PrefixDeletions: true,
	repo.PrefixPolicy: true, repo.PrefixVerifications: true, repo.PrefixDrills: true, repo.PrefixLocks: true,
}

// list reads the whole repository listing once and sorts every key into
// its part of the layout; keys outside it are strays.
func (c *checker) list(ctx context.Context) error {
	c.progress.Stage("list", 0, 0)
	err := c.be.List(ctx, "", func(oi backend.ObjectInfo) error {
		if !c.classify(oi) {
			c.warn(oi.Key, KindStray, "not part of the repository layout; strata ignores it")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check: list repository: %w", err)
	}
	c.res.Packs = len(c.packs)
	return nil
}

func (c *checker) classify(oi backend.ObjectInfo) bool {
	top, rest, _ := strings.Cut(oi.Key, "/")
	switch {
	case oi.Key == "config":
		return true
	case top == repo.PrefixData:
		dir, name, ok := strings.Cut(rest, "/")
		id, err := chunk.ParseID(name)
		if !ok || err != nil || !strings.EqualFold(dir, name[:2]) {
			return false
		}
		c.packs[id] = oi.Size
		return true
	case unpackedPrefixes[top]:
		id, err := chunk.ParseID(rest)
		if err != nil {
			return false
		}
		c.objects[top] = append(c.objects[top], listed{key: oi.Key, prefix: top, id: id})
		return true
	case top == repo.PrefixOplog:
		if s, err := oplog.ParseSegmentKey(oi.Key); err == nil {
			s.Size = oi.Size
			c.segments[s.Generation] = append(c.segments[s.Generation], s)
			return true
		}
		g, hb, ok := strings.Cut(rest, "/heartbeats/")
		gen, err1 := strconv.ParseUint(g, 10, 64)
		id, err2 := chunk.ParseID(hb)
		if !ok || len(g) != 10 || err1 != nil || gen == 0 || err2 != nil {
			return false
		}
		c.objects["heartbeats"] = append(c.objects["heartbeats"], listed{key: oi.Key, prefix: repo.PrefixOplog, id: id, gen: gen})
		return true
	}
	return false
}

// load reads a whole object; gone reports one removed since the listing
// (a lease renewed, a segment compacted), which is no problem.
func (c *checker) load(ctx context.Context, key string) (b []byte, gone bool, err error) {
	b, err = backend.LoadAll(ctx, c.be, key)
	if errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("check: %w", err)
	}
	c.bytesRead.Add(int64(len(b)))
	return b, false, nil
}

// open checks a sealed object's name and authentication and returns its
// plaintext, nil when it is unusable. It reports at most one problem, and
// says whether it did.
func (c *checker) open(bad report, key, ad string, id chunk.ID, stored []byte) (plain []byte, reported bool) {
	plain, authentic, err := c.r.OpenObjectChecked(ad, stored)
	if got := chunk.ObjectID(stored); got != id {
		detail := "its bytes hash to " + got.String()
		switch {
		case err != nil && !authentic:
			detail += ", and they do not authenticate either"
		case err != nil:
			detail += "; " + err.Error()
		}
		bad(key, KindHashMismatch, "%s", detail)
		return plain, true // an authentic object is still used
	}
	switch {
	case err != nil && !authentic:
		bad(key, KindUnauthenticated, "%v", err)
		return nil, true
	case err != nil:
		bad(key, KindUndecodable, "%v", err)
		return nil, true
	}
	return plain, false
}

// checkConfig opens the config (its name is fixed, so only the AEAD and
// its content vouch for it).
func (c *checker) checkConfig(ctx context.Context) error {
	stored, gone, err := c.load(ctx, "config")
	if err != nil {
		return err
	}
	if gone {
		c.damage("config", KindUndecodable, "the config object is gone")
		return nil
	}
	plain, authentic, err := c.r.OpenObjectChecked("config", stored)
	switch {
	case err != nil && !authentic:
		c.damage("config", KindUnauthenticated, "%v", err)
	case err != nil:
		c.damage("config", KindUndecodable, "%v", err)
	default:
		var cfg repo.Config
		if err := json.Unmarshal(plain, &cfg); err != nil {
			c.damage("config", KindUndecodable, "%v", err)
		} else if err := cfg.Validate(); err != nil {
			c.damage("config", KindUndecodable, "%v", err)
		}
	}
	c.res.Objects++
	return nil
}

// checkObjects checks every key file and every unpacked object but the
// oplog segments (checkOplog reads those in chain order): name, AEAD and
// document. It collects what later stages need: which index objects are
// live, the snapshots, deletion records and newest heartbeats.
func (c *checker) checkObjects(ctx context.Context) error {
	var all []listed
	for _, l := range c.objects {
		all = append(all, l...)
	}
	c.progress.Stage("objects", len(all), 0)
	err := forEachLimit(ctx, c.workers, all, func(ctx context.Context, o listed) error {
		stored, gone, err := c.load(ctx, o.key)
		if err != nil || gone {
			return err
		}
		defer c.progress.Done(1, int64(len(stored)))
		c.mu.Lock()
		c.res.Objects++
		c.mu.Unlock()
		if o.prefix == "keys" {
			if got := chunk.ObjectID(stored); got != o.id {
				c.damage(o.key, KindHashMismatch, "its bytes hash to %s", got)
			} else if _, err := repo.ParseKeyFile(stored); err != nil {
				c.damage(o.key, KindUndecodable, "%v", err)
			}
			return nil
		}
		plain, reported := c.open(c.damage, o.key, o.prefix, o.id, stored)
		if plain == nil {
			return nil
		}
		if err := c.decode(o, plain); err != nil && !reported {
			c.damage(o.key, KindUndecodable, "%v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(c.snaps, func(i, j int) bool {
		if !c.snaps[i].Time.Equal(c.snaps[j].Time) {
			return c.snaps[i].Time.Before(c.snaps[j].Time)
		}
		return c.snaps[i].ID.String() < c.snaps[j].ID.String()
	})
	c.res.Snapshots = len(c.snaps)
	return nil
}

// decode parses an authentic object's document and records what later
// stages use.
func (c *checker) decode(o listed, plain []byte) error {
	switch {
	case o.prefix == repo.PrefixIndex:
		f, err := index.Decode(plain)
		if err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range f.Supersedes {
			c.superseded[s] = true
		}
		if c.keptBytes+len(plain) > keepIndexBytes {
			f = nil
		} else {
			c.keptBytes += len(plain)
		}
		c.indexFiles[o.id] = f
	case o.prefix == repo.PrefixSnapshots:
		var sn snapshot.Snapshot
		if err := json.Unmarshal(plain, &sn); err != nil {
			return err
		}
		if sn.Version != snapshot.DocVersion {
			return fmt.Errorf("document version %d not supported", sn.Version)
		}
		c.mu.Lock()
		c.snaps = append(c.snaps, snapshot.Entry{ID: o.id, Snapshot: &sn})
		c.mu.Unlock()
	case o.prefix == repo.PrefixDeletions:
		var d repo.Deletion
		if err := json.Unmarshal(plain, &d); err != nil {
			return err
		}
		if d.Kind == "" {
			return errors.New("deletion record without a kind")
		}
		if d.Kind == repo.DeletionOplogCompaction {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, k := range d.Removed {
			if s, err := oplog.ParseSegmentKey(k); err == nil {
				if c.pruned[s.Generation] == nil {
					c.pruned[s.Generation] = map[uint64]bool{}
				}
				c.pruned[s.Generation][s.LastLSN] = true
			}
		}
	case o.gen != 0: // a heartbeat
		var hb oplog.Heartbeat
		if err := json.Unmarshal(plain, &hb); err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if cur := c.heartbeats[o.gen]; cur == nil || hb.Time.After(cur.hb.Time) {
			c.heartbeats[o.gen] = &hbSeen{key: o.key, hb: hb}
		}
	case o.prefix == repo.PrefixLocks:
		var l repo.LeaseInfo
		return json.Unmarshal(plain, &l)
	default: // policy, verifications, drills: one JSON object
		var m map[string]json.RawMessage
		return json.Unmarshal(plain, &m)
	}
	return nil
}
