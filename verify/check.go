package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path"
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
	// "read-data") of total items (0: not known).
	Stage(name string, total int)
	// Done counts items of the current stage finished and bytes read.
	Done(items int, bytes int64)
}

type noCheckProgress struct{}

func (noCheckProgress) Stage(string, int) {}
func (noCheckProgress) Done(int, int64)   {}

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
	c.progress.Stage("list", 0)
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
	c.progress.Stage("objects", len(all))
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

// packJob is one pack as one index object describes it.
type packJob struct {
	pack    chunk.ID
	indexID chunk.ID
	blobs   []index.Blob
}

// checkPacks goes through the live index objects (authentic, not
// superseded by another listed one): it adds them to check's own index
// cache, and compares every pack they name with the store and with the
// pack's header. Packs no live index names are reported as unreferenced.
func (c *checker) checkPacks(ctx context.Context) error {
	var live []chunk.ID
	for id := range c.indexFiles {
		if !c.superseded[id] {
			live = append(live, id)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].String() < live[j].String() })
	c.res.IndexObjects = len(live)
	c.progress.Stage("packs", len(c.packs))

	jobs := make(chan packJob)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for _, id := range live {
			f := c.indexFiles[id]
			if f == nil {
				// Not kept: load it again. Its name was judged in the
				// first pass; an authentic object is used even when its
				// name is wrong.
				key := repo.ObjectKey(repo.PrefixIndex, id)
				stored, gone, err := c.load(gctx, key)
				if err != nil {
					return err
				}
				if gone {
					continue // removed by a prune since the first pass
				}
				plain, err := c.r.OpenObject(repo.PrefixIndex, stored)
				if err == nil {
					f, err = index.Decode(plain)
				}
				if err != nil {
					return fmt.Errorf("check: %s changed during the check: %w", key, err)
				}
			}
			c.indexFiles[id] = nil // the cache holds it from here
			if err := c.blobs.Add(id, f); err != nil {
				return fmt.Errorf("check: %w", err)
			}
			byPack := map[chunk.ID][]index.Blob{}
			var order []chunk.ID
			for _, p := range f.Packs {
				if _, ok := byPack[p.ID]; !ok {
					order = append(order, p.ID)
				}
				byPack[p.ID] = append(byPack[p.ID], p.Blobs...)
				c.res.Blobs += int64(len(p.Blobs))
			}
			for _, p := range order {
				select {
				case jobs <- packJob{pack: p, indexID: id, blobs: byPack[p]}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	})
	for range c.workers {
		g.Go(func() error {
			for j := range jobs {
				if err := c.checkPack(gctx, j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for id := range c.packs {
		if !c.indexed[id] {
			c.warn(repo.ObjectKey(repo.PrefixData, id), KindUnreferenced, "no live index object lists this pack (left by an interrupted backup or a prune; prune removes it)")
		}
	}
	return nil
}

func (c *checker) checkPack(ctx context.Context, j packJob) error {
	key := repo.ObjectKey(repo.PrefixData, j.pack)
	idxKey := repo.ObjectKey(repo.PrefixIndex, j.indexID)
	c.mu.Lock()
	c.indexed[j.pack] = true
	size, ok := c.packs[j.pack]
	c.mu.Unlock()
	markBad := func() {
		c.mu.Lock()
		c.badPacks[j.pack] = true
		c.mu.Unlock()
	}
	if !ok {
		// The listing may lag behind the store: ask once more.
		fi, err := c.be.Stat(ctx, key)
		if errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil {
			c.damage(key, KindMissingPack, "%s lists %d blobs in it", idxKey, len(j.blobs))
			markBad()
			return nil
		}
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		size = fi.Size
	}
	defer c.progress.Done(1, 0)
	beyond := 0
	for _, b := range j.blobs {
		if int64(b.Offset)+int64(b.Length) > size {
			beyond++
		}
	}
	if beyond > 0 {
		c.damage(key, KindIndexRange, "%s places %d of its %d blobs past the pack's end (%d bytes)", idxKey, beyond, len(j.blobs), size)
		markBad()
	}
	hdr, _, err := c.r.LoadPackHeader(ctx, j.pack)
	switch {
	case errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil:
		c.damage(key, KindMissingPack, "%s lists %d blobs in it; it was removed during the check", idxKey, len(j.blobs))
		markBad()
		return nil
	case errors.Is(err, repo.ErrCorrupt):
		c.damage(key, KindPackHeader, "%s", strings.TrimPrefix(err.Error(), "load pack header "+key+": "))
		markBad()
		return nil
	case err != nil:
		return fmt.Errorf("check: %w", err)
	}
	c.bytesRead.Add(int64(len(hdr))*41 + repo.Overhead + 4) // 41-byte entries, sealed, and the trailer
	if d := comparePack(hdr, j.blobs); d != "" {
		c.damage(key, KindIndexMismatch, "header and %s disagree: %s", idxKey, d)
		markBad()
	}
	return nil
}

// comparePack returns how a pack's header and an index's entries for it
// differ, "" when they list the same blobs alike.
func comparePack(hdr, idx []index.Blob) string {
	at := make(map[uint32]index.Blob, len(hdr))
	for _, b := range hdr {
		at[b.Offset] = b
	}
	bad, first := 0, ""
	for _, b := range idx {
		h, ok := at[b.Offset]
		if ok && h == b {
			delete(at, b.Offset)
			continue
		}
		if bad++; bad == 1 {
			first = fmt.Sprintf("blob %s at offset %d (length %d, %s)", b.ID.Short(), b.Offset, b.Length, b.Type)
			if ok {
				first += fmt.Sprintf(" is blob %s (length %d, %s) in the header", h.ID.Short(), h.Length, h.Type)
			} else {
				first += " is not in the header"
			}
		}
	}
	var parts []string
	if bad > 0 {
		parts = append(parts, fmt.Sprintf("%d index entries do not match, first: %s", bad, first))
	}
	if bad == 0 && len(at) > 0 {
		parts = append(parts, fmt.Sprintf("the header lists %d blobs the index does not", len(at)))
	}
	return strings.Join(parts, "; ")
}

// checkSnapshots walks every snapshot's trees (plain paths and tiers), each
// distinct tree once: every tree must load and decode, every file's blobs
// must be indexed in a pack that is not known damaged, and a file's size
// must be the sum of its blobs.
func (c *checker) checkSnapshots(ctx context.Context) error {
	c.progress.Stage("snapshots", len(c.snaps))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.workers)
	for _, e := range c.snaps {
		snapKey := repo.ObjectKey(repo.PrefixSnapshots, e.ID)
		if e.Tree != nil {
			g.Go(func() error { return c.visitTree(gctx, g, snapKey, "/", *e.Tree, nil) })
		}
		for _, t := range e.Tiers {
			if t.Tree != nil {
				g.Go(func() error { return c.visitTree(gctx, g, snapKey, "tier:"+t.Name, *t.Tree, &t) })
			}
		}
		c.progress.Done(1, 0)
	}
	return g.Wait()
}

// visitTree checks tree id at path p of snapshot snapKey and walks on into
// its subtrees, in new goroutines while g has room and inline otherwise (a
// worker never waits for a slot, so the walk cannot deadlock). tier is set
// for a tier's root tree.
func (c *checker) visitTree(ctx context.Context, g *errgroup.Group, snapKey, p string, id chunk.ID, tier *snapshot.Tier) error {
	c.mu.Lock()
	seen := c.trees[id]
	c.trees[id] = true
	c.mu.Unlock()
	if seen {
		return nil
	}
	plain, problem, err := c.loadTree(ctx, id)
	if err != nil {
		return err
	}
	if problem != "" {
		kind := KindUnreadableBlob
		if strings.HasSuffix(problem, "in no index") {
			kind = KindMissingBlob
		}
		c.damage(snapKey, kind, "tree %s at %s: %s", id.Short(), p, problem)
		return nil
	}
	c.mu.Lock()
	c.res.Trees++
	c.mu.Unlock()
	tree, err := snapshot.DecodeTree(plain)
	if err != nil {
		c.damage(snapKey, KindBadTree, "tree %s at %s: %v", id.Short(), p, err)
		return nil
	}
	if tier != nil && tier.Format == snapshot.FormatGraph {
		names := []string{"base.jsonl"}
		for i := range tier.Layers {
			names = append(names, fmt.Sprintf("layer-%04d.jsonl", i+1))
		}
		for _, name := range names {
			if n := tree.Find(name); n == nil || n.Type != snapshot.NodeFile {
				c.damage(snapKey, KindBadTree, "graph tier %s: tree %s has no file %s", tier.Name, id.Short(), name)
			}
		}
	}
	for _, n := range tree.Nodes {
		np := path.Join(p, n.Name)
		switch n.Type {
		case snapshot.NodeFile:
			if err := c.checkFile(snapKey, np, n); err != nil {
				return err
			}
		case snapshot.NodeDir:
			if n.Subtree == nil {
				c.damage(snapKey, KindBadTree, "directory %s has no subtree", np)
				continue
			}
			sub := *n.Subtree
			walk := func() error { return c.visitTree(ctx, g, snapKey, np, sub, nil) }
			if !g.TryGo(walk) {
				if err := walk(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// loadTree returns a tree blob's plaintext, or why it cannot be had.
func (c *checker) loadTree(ctx context.Context, id chunk.ID) ([]byte, string, error) {
	locs, err := c.blobs.Lookup(id)
	if err != nil {
		return nil, "", fmt.Errorf("check: %w", err)
	}
	var lastErr error
	tried := 0
	for _, l := range locs {
		c.mu.Lock()
		bad := c.badPacks[l.Pack]
		c.mu.Unlock()
		if l.Type != index.TreeBlob || bad {
			continue
		}
		tried++
		plain, err := c.r.LoadBlobAt(ctx, l, nil)
		if err == nil {
			c.bytesRead.Add(int64(l.Length))
			return plain, "", nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if !errors.Is(err, repo.ErrCorrupt) && !errors.Is(err, backend.ErrNotFound) {
			return nil, "", fmt.Errorf("check: %w", err)
		}
		lastErr = err
	}
	switch {
	case lastErr != nil:
		return nil, lastErr.Error(), nil
	case tried == 0 && len(locs) > 0:
		return nil, fmt.Sprintf("every copy is in a missing or damaged pack (%s)", repo.ObjectKey(repo.PrefixData, locs[0].Pack)), nil
	}
	return nil, "in no index", nil
}

// checkFile checks a file node's blobs against check's index.
func (c *checker) checkFile(snapKey, p string, n *snapshot.Node) error {
	var missing, unreadable int
	var firstMissing, firstUnreadable string
	var sum uint64
	for _, id := range n.Content {
		locs, err := c.blobs.Lookup(id)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		found, usable := false, false
		for _, l := range locs {
			if l.Type != index.DataBlob {
				continue
			}
			c.mu.Lock()
			bad := c.badPacks[l.Pack]
			c.mu.Unlock()
			if !found {
				sum += uint64(l.RawLength)
				if firstUnreadable == "" && bad {
					firstUnreadable = fmt.Sprintf("%s in %s", id.Short(), repo.ObjectKey(repo.PrefixData, l.Pack))
				}
			}
			found, usable = true, usable || !bad
		}
		switch {
		case !found:
			if missing++; missing == 1 {
				firstMissing = id.Short()
			}
		case !usable:
			unreadable++
		}
	}
	switch {
	case missing > 0:
		c.damage(snapKey, KindMissingBlob, "file %s: %d of its %d blobs are in no index (first: %s)", p, missing, len(n.Content), firstMissing)
	case unreadable > 0:
		c.damage(snapKey, KindUnreadableBlob, "file %s: %d of its %d blobs are only in missing or damaged packs (first: %s)", p, unreadable, len(n.Content), firstUnreadable)
	case sum != n.Size:
		c.damage(snapKey, KindSizeMismatch, "file %s: size %d, its blobs hold %d bytes", p, n.Size, sum)
	}
	return nil
}

// checkOplog checks every generation's chain, generation by generation.
func (c *checker) checkOplog(ctx context.Context) error {
	gens := map[uint64]bool{}
	for g := range c.segments {
		gens[g] = true
	}
	for g := range c.heartbeats {
		gens[g] = true
	}
	order := make([]uint64, 0, len(gens))
	for g := range gens {
		order = append(order, g)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	c.res.Generations = len(order)
	c.progress.Stage("oplog", len(order))
	for _, g := range order {
		if err := c.checkGeneration(ctx, g); err != nil {
			return err
		}
		c.progress.Done(1, 0)
	}
	return nil
}

// checkGeneration walks a generation and reports what it found. A push and
// its compaction may run meanwhile: when a segment vanished during the walk
// (compaction replaced it) or a heartbeat vouches for more than the listing
// held (a segment sealed after it), problems may be artefacts of the stale
// listing, so the generation is listed and walked again, up to 3 times.
func (c *checker) checkGeneration(ctx context.Context, gen uint64) error {
	segs := c.segments[gen]
	for attempt := 1; ; attempt++ {
		found, stale, err := c.walkGeneration(ctx, gen, segs)
		if err != nil {
			return err
		}
		if !stale || len(found) == 0 || attempt == 3 {
			c.mu.Lock()
			c.res.Problems = append(c.res.Problems, found...)
			c.res.Segments += len(segs)
			c.mu.Unlock()
			return nil
		}
		l, err := oplog.Open(ctx, c.r, gen)
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if segs, err = l.Segments(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
}

// walkGeneration walks one generation's segments in chain order (first
// lsn, then the longest first, as oplog's reader does). A segment whose
// range lies inside the chain segment before it (a compaction leftover)
// must hold the same records; every chain segment must continue the one
// before it. Segments load ahead of the walk, c.workers at a time. stale
// says the listing was found out of date.
func (c *checker) walkGeneration(ctx context.Context, gen uint64, segs []oplog.Segment) (found []Problem, stale bool, err error) {
	sort.Slice(segs, func(i, j int) bool {
		a, b := segs[i], segs[j]
		if a.FirstLSN != b.FirstLSN {
			return a.FirstLSN < b.FirstLSN
		}
		if a.LastLSN != b.LastLSN {
			return a.LastLSN > b.LastLSN
		}
		return a.Key < b.Key
	})
	genObj := strings.TrimSuffix(oplog.GenerationPrefix(gen), "/")
	var cl collector
	bad := cl.add

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan segResult, c.workers)
	go func() {
		defer close(queue)
		for _, s := range segs {
			ch := make(chan segResult, 1)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
			go func() { ch <- c.loadSegment(ctx, bad, gen, s) }()
		}
	}()

	var (
		cur     *segState       // the chain segment before, when usable
		curLast uint64          // its last lsn, from the key
		started bool            // a chain segment was seen
		ends    map[string]bool // end ids the next chain segment may name as prev
		parent  *oplog.Parent
	)
	for ch := range queue {
		res := <-ch
		if res.err != nil {
			return nil, false, res.err
		}
		if res.gone {
			stale = true
			continue
		}
		st := res.st
		if st != nil {
			parent = checkParent(bad, gen, st, parent)
		}
		covered := started && res.seg.LastLSN <= curLast
		switch {
		case covered:
			if st != nil && cur != nil {
				if d := differ(st, cur); d != "" {
					bad(st.seg.Key, KindOplogOverlap, "%s", d)
				} else if st.seg.LastLSN == cur.seg.LastLSN {
					ends[oplog.EndID(st.h, st.seg.ID)] = true
				}
			}
			continue
		case st == nil:
			// Unusable (reported): the chain cannot be followed across it.
			cur, curLast, started, ends = nil, res.seg.LastLSN, true, nil
			continue
		case !started:
			c.checkStart(bad, genObj, gen, st)
		case cur != nil:
			checkLink(bad, genObj, gen, cur, st, ends)
		}
		cur, curLast, started = st, st.seg.LastLSN, true
		ends = map[string]bool{oplog.EndID(st.h, st.seg.ID): true}
	}
	if hb := c.heartbeats[gen]; hb != nil && hb.hb.LastLSN > curLast {
		stale = true
		bad(genObj, KindOplogGap, "generation %d: heartbeat %s vouches for the log up to lsn %d, but its segments end at lsn %d: records after lsn %d are missing",
			gen, hb.key, hb.hb.LastLSN, curLast, curLast)
	}
	return cl.ps, stale, nil
}

// segState is a segment loaded, authentic and decoded, header matching key.
type segState struct {
	seg  oplog.Segment
	h    oplog.Header
	recs []*oplog.Record
}

type segResult struct {
	seg  oplog.Segment
	st   *segState // nil: unusable (reported) or gone
	gone bool
	err  error
}

// loadSegment loads and checks one segment on its own: name, AEAD, decoding,
// and the header against the key.
func (c *checker) loadSegment(ctx context.Context, bad report, gen uint64, s oplog.Segment) segResult {
	stored, gone, err := c.load(ctx, s.Key)
	if err != nil || gone {
		return segResult{seg: s, gone: gone, err: err}
	}
	unusable := segResult{seg: s}
	plain, reported := c.open(bad, s.Key, repo.PrefixOplog, s.ID, stored)
	if plain == nil {
		return unusable
	}
	h, recs, err := oplog.DecodeSegment(plain)
	if err != nil {
		if !reported {
			bad(s.Key, KindUndecodable, "%v", err)
		}
		return unusable
	}
	var what string
	switch {
	case h.Generation != s.Generation || h.FirstLSN != s.FirstLSN || h.LastLSN != s.LastLSN:
		what = fmt.Sprintf("header says generation %d, lsn %d..%d; the key says generation %d, lsn %d..%d",
			h.Generation, h.FirstLSN, h.LastLSN, s.Generation, s.FirstLSN, s.LastLSN)
	case h.Level < 0 || (h.Level == 0) != (h.Tail == ""):
		what = fmt.Sprintf("level %d with tail %q (a tail is what compacted segments, and only they, carry)", h.Level, h.Tail)
	case gen == 1 && h.Parent != nil:
		what = "generation 1 has no parent, but the header names one"
	}
	if what != "" {
		if !reported {
			bad(s.Key, KindOplogHeader, "%s", what)
		}
		return unusable
	}
	c.progress.Done(0, int64(len(stored)))
	return segResult{seg: s, st: &segState{seg: s, h: h, recs: recs}}
}

// checkParent checks that a generation >= 2 names a parent, the same in
// every segment, and returns the parent seen first.
func checkParent(bad report, gen uint64, st *segState, first *oplog.Parent) *oplog.Parent {
	p := st.h.Parent
	switch {
	case gen < 2:
		return nil
	case p == nil:
		bad(st.seg.Key, KindOplogParent, "generation %d needs a parent; the header names none", gen)
		return first
	case p.Generation >= gen:
		bad(st.seg.Key, KindOplogParent, "generation %d names generation %d as its parent (it must be older)", gen, p.Generation)
	case first != nil && *p != *first:
		bad(st.seg.Key, KindOplogParent, "parent (generation %d, lsn %d) differs from the generation's first segment's (generation %d, lsn %d)",
			p.Generation, p.LSN, first.Generation, first.LSN)
	}
	if first == nil {
		return p
	}
	return first
}

// checkStart checks a generation's first chain segment: its prev is ""
// unless a deletion record removed the segment before it (prune's PITR
// window: a removed segment of the generation ends at the record the first
// one continues), and a branch starts after its parent's lsn in a
// generation that exists.
func (c *checker) checkStart(bad report, genObj string, gen uint64, st *segState) {
	before := st.recs[0].LSN - 1
	if st.recs[0].HasPrev {
		before = st.recs[0].PrevLSN
	}
	if st.h.Prev != "" && !c.pruned[gen][before] {
		bad(genObj, KindOplogGap, "generation %d: the records before lsn %d are missing: its first segment %s names prev %s, and no deletion record removed it",
			gen, st.seg.FirstLSN, st.seg.Key, st.h.Prev)
	}
	p := st.h.Parent
	if gen < 2 || p == nil || p.Generation >= gen {
		return
	}
	if p.LSN > 0 && len(c.segments[p.Generation]) == 0 {
		bad(st.seg.Key, KindOplogParent, "generation %d branches from lsn %d of generation %d, which has no segments", gen, p.LSN, p.Generation)
	}
	if st.seg.FirstLSN <= p.LSN {
		bad(st.seg.Key, KindOplogParent, "generation %d starts at lsn %d, not after its branch point, lsn %d", gen, st.seg.FirstLSN, p.LSN)
	}
}

// checkLink checks that chain segment b continues a.
func checkLink(bad report, genObj string, gen uint64, a, b *segState, ends map[string]bool) {
	last, first := a.recs[len(a.recs)-1], b.recs[0]
	switch {
	case b.seg.FirstLSN <= a.seg.LastLSN:
		bad(b.seg.Key, KindOplogChain, "lsn %d..%d overlaps %s (lsn %d..%d) without covering it", b.seg.FirstLSN, b.seg.LastLSN, a.seg.Key, a.seg.FirstLSN, a.seg.LastLSN)
		return
	case first.HasPrev && first.PrevLSN > last.LSN, !first.HasPrev && first.LSN > last.LSN+1:
		upto := first.LSN - 1
		if first.HasPrev {
			upto = first.PrevLSN
		}
		bad(genObj, KindOplogGap, "generation %d: the records after lsn %d up to lsn %d are missing (between %s and %s, whose prev is %s)",
			gen, last.LSN, upto, a.seg.Key, b.seg.Key, b.h.Prev)
		return
	case first.HasPrev && first.PrevLSN != last.LSN:
		bad(b.seg.Key, KindOplogChain, "first record's prev_lsn %d does not follow lsn %d, the last of %s", first.PrevLSN, last.LSN, a.seg.Key)
		return
	}
	if !ends[b.h.Prev] {
		bad(b.seg.Key, KindOplogChain, "prev %q does not name the segment before it, %s (end id %s)", b.h.Prev, a.seg.Key, oplog.EndID(a.h, a.seg.ID))
	}
	if first.Time.Compare(last.Eff) < 0 {
		bad(b.seg.Key, KindOplogChain, "lsn %d's ts %s goes back before lsn %d's %s", first.LSN, first.TS, last.LSN, last.EffTS)
	}
}

// differ returns how covered's records differ from those of the chain
// segment by covering its range, "" if they do not.
func differ(covered, by *segState) string {
	for _, r := range covered.recs {
		i := sort.Search(len(by.recs), func(i int) bool { return by.recs[i].LSN >= r.LSN })
		if i == len(by.recs) || by.recs[i].LSN != r.LSN {
			return fmt.Sprintf("holds lsn %d, which %s (covering its range) does not", r.LSN, by.seg.Key)
		}
		if !oplog.Same(r, by.recs[i]) {
			return fmt.Sprintf("lsn %d differs from the record in %s (covering its range)", r.LSN, by.seg.Key)
		}
	}
	return ""
}

// readData reads the chosen packs whole, one per worker: the pack must hash
// to its name and every blob its header lists must open and hash to its id.
func (c *checker) readData(ctx context.Context) error {
	if !c.opts.ReadData && c.opts.Subset == nil {
		return nil
	}
	ids := make([]chunk.ID, 0, len(c.packs))
	for id := range c.packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	c.res.ReadData = "all"
	if s := c.opts.Subset; s != nil {
		ids = c.subset(*s, ids)
	}
	c.progress.Stage("read-data", len(ids))
	bufs := make(chan []byte, c.workers)
	for range c.workers {
		bufs <- nil
	}
	var blobs atomic.Int64
	err := forEachLimit(ctx, c.workers, ids, func(ctx context.Context, id chunk.ID) error {
		buf := <-bufs
		defer func() { bufs <- buf }()
		var err error
		buf, err = c.readPack(ctx, id, buf[:0], &blobs)
		return err
	})
	c.res.PacksRead = len(ids)
	c.res.BlobsRead = blobs.Load()
	return err
}

// subset picks the packs of s from ids (sorted).
func (c *checker) subset(s Subset, ids []chunk.ID) []chunk.ID {
	c.res.ReadData = s.String()
	if s.Percent == 0 {
		var out []chunk.ID
		for _, id := range ids {
			if int(id[0])%s.M == s.N-1 {
				out = append(out, id)
			}
		}
		return out
	}
	if s.Seed == 0 {
		s.Seed = rand.Uint64() | 1
	}
	c.res.Seed = s.Seed
	n := int(math.Round(float64(len(ids)) * s.Percent / 100))
	n = min(max(n, 1), len(ids))
	rng := rand.New(rand.NewPCG(s.Seed, 0x5eed))
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	out := ids[:n]
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// readPack reads and checks one pack into buf and returns buf for reuse.
func (c *checker) readPack(ctx context.Context, id chunk.ID, buf []byte, blobs *atomic.Int64) ([]byte, error) {
	key := repo.ObjectKey(repo.PrefixData, id)
	err := c.be.Load(ctx, key, 0, 0, func(rd io.Reader) error {
		b := bytes.NewBuffer(buf[:0])
		_, err := b.ReadFrom(rd)
		buf = b.Bytes()
		return err
	})
	if errors.Is(err, backend.ErrNotFound) && ctx.Err() == nil {
		return buf, nil // removed since the listing (by prune)
	}
	if err != nil {
		return buf, fmt.Errorf("check: %w", err)
	}
	c.bytesRead.Add(int64(len(buf)))
	defer c.progress.Done(1, int64(len(buf)))
	hashOK := chunk.ObjectID(buf) == id
	if !hashOK {
		c.damage(key, KindHashMismatch, "its bytes hash to %s", chunk.ObjectID(buf))
	}
	hdr, err := c.r.ParsePack(buf)
	if err != nil {
		c.mu.Lock()
		known := c.badPacks[id]
		c.mu.Unlock()
		if hashOK || !known {
			c.damage(key, KindPackHeader, "%v", err)
		}
		return buf, nil
	}
	var plain []byte
	for _, b := range hdr {
		blobs.Add(1)
		sealed := buf[b.Offset : b.Offset+b.Length]
		if plain, err = c.r.OpenBlob(plain, b, sealed); err != nil {
			c.damage(key, KindBadBlob, "%s blob %s at offset %d: %v", b.Type, b.ID.Short(), b.Offset, err)
		}
	}
	return buf, nil
}
