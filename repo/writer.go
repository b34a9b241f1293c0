package repo

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

// indexFlushBlobs bounds an index object: a writer stores its index in
// objects of at most this many blobs, so no index object grows without limit
// and a crash loses at most this many blobs' worth of index (their packs
// stay as unreferenced data for prune).
const indexFlushBlobs = 50000

// WriterOptions tune WithWriter.
type WriterOptions struct {
	// LeaseKind is the lease held while writing (default LeaseBackup).
	LeaseKind string
	// LeaseTTL overrides DefaultLeaseTTL (tests).
	LeaseTTL time.Duration
	// Workers compress and encrypt; default GOMAXPROCS.
	Workers int
	// Uploaders save finished packs; default from the backend.
	Uploaders int
	// BeforeCommit, if set, runs after the last pack is durable and before
	// the final re-check of marked packs (tests use it to mark a pack
	// mid-backup).
	BeforeCommit func(ctx context.Context) error
}

// WriteStats counts what a writer did.
type WriteStats struct {
	BlobsNew    int64 // blobs stored
	BlobsKnown  int64 // blobs found in the repository or earlier in this run
	BytesAdded  int64 // plaintext bytes of stored blobs
	BytesStored int64 // bytes written: packs and index objects
	Packs       int64
	Restored    int64 // blobs stored again because their pack was marked
}

// Writer adds blobs to the repository. Its methods are safe for concurrent
// use. It exists only inside WithWriter's callback.
type Writer struct {
	r     *Repository
	idx   *index.Cache
	marks *MarkSet
	opts  WriterOptions
	mode  string

	jobs    chan blobJob
	uploads chan *packBuilder
	failed  atomic.Bool // fn returned an error: the last pack stays unsent
	// Free lists, not sync.Pool: a pool is emptied at every GC, and
	// reallocating chunk buffers and 16 MiB packs after each one is what
	// drove the heap (and RSS) up. The lists are bounded, so what they keep
	// is bounded too.
	chunkBufs chan []byte
	packBufs  chan []byte
	chunkCap  int // capacity of a new chunk buffer

	// One pack is filled at a time, by whichever worker has a blob ready:
	// a pack per worker held Workers half-filled 16 MiB buffers for the
	// whole run, the largest part of a backup's memory. Sealing under the
	// lock costs little: it runs at GB/s over compressed bytes, while
	// compression, the costly stage, stays outside it.
	packMu sync.Mutex
	pack   *packBuilder
	// stream is the backend when it can save a pack from its spool file.
	stream backend.Streamer

	mu      sync.Mutex
	pending map[chunk.ID]struct{}     // stored or in flight in this run
	reused  map[chunk.ID][]index.Blob // pack → blobs this run relies on
	indexMu sync.Mutex
	unsaved index.File // packs not yet in an index object
	nblobs  int

	stats struct{ new, known, added, stored, packs, restored atomic.Int64 }
}

type blobJob struct {
	id   chunk.ID
	t    index.BlobType
	data []byte
}

// WithWriter runs fn with a Writer. When fn returns nil, WithWriter flushes
// every pack, re-checks that no pack the run reused was marked for deletion
// meanwhile (storing those blobs again if one was), and writes the index. It
// returns nil only once all of that is durable: a snapshot written afterwards
// refers to nothing that can be missing. The writer holds a shared lease for
// its whole run.
func (r *Repository) WithWriter(ctx context.Context, opts WriterOptions, fn func(ctx context.Context, w *Writer) error) (WriteStats, error) {
	if opts.LeaseKind == "" {
		opts.LeaseKind = LeaseBackup
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Uploaders <= 0 {
		opts.Uploaders = min(backend.Connections(r.be, 2), 8)
	}
	idx, err := r.Index(ctx)
	if err != nil {
		return WriteStats{}, err
	}
	lease, err := r.AcquireLease(ctx, opts.LeaseKind, "", false, opts.LeaseTTL)
	if err != nil {
		return WriteStats{}, err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	// Marks are read after the lease exists: a prune that marks later sees
	// the lease and will not delete before it ends.
	marks, err := r.LoadMarks(ctx)
	if err != nil {
		return WriteStats{}, err
	}

	w := &Writer{
		r: r, idx: idx, marks: marks, opts: opts, mode: r.cfg.Compression,
		// Unbuffered: every queued chunk is a buffer held; the chunkers
		// outpace compression, so a queue would only hold more of them.
		jobs:    make(chan blobJob),
		uploads: make(chan *packBuilder, 1),
		pending: make(map[chunk.ID]struct{}),
		reused:  make(map[chunk.ID][]index.Blob),
	}
	// The chunker grows a new chunk buffer for the few chunks that do not
	// fit it (see chunkBufCap).
	w.chunkCap = r.chunkBufCap()
	// Room for every buffer that can be out at once (chunkers, queued jobs,
	// workers), so that none is dropped and made again.
	w.chunkBufs = make(chan []byte, 2*opts.Workers+4)
	w.stream, _ = r.be.(backend.Streamer)
	w.packBufs = make(chan []byte, opts.Uploaders+1)

	pipe, pctx := errgroup.WithContext(ctx)
	var workers sync.WaitGroup
	for range opts.Workers {
		workers.Add(1)
		pipe.Go(func() error { defer workers.Done(); return w.work(pctx) })
	}
	for range opts.Uploaders {
		pipe.Go(func() error { return w.upload(pctx) })
	}
	go func() {
		workers.Wait()
		// The last pack, partly filled, goes once every worker is done,
		// unless fn failed: a failed write sends nothing more.
		if !w.failed.Load() && w.pack != nil && len(w.pack.blobs) > 0 {
			if err := w.send(pctx, w.pack); err == nil {
				w.pack = nil
			}
		}
		close(w.uploads)
	}()

	fnErr := fn(pctx, w)
	w.failed.Store(fnErr != nil)
	close(w.jobs)
	pipeErr := pipe.Wait()
	if w.pack != nil { // not sent: the run failed
		w.pack.close()
	}
	if err := errors.Join(fnErr, pipeErr); err != nil {
		return w.Stats(), err
	}
	if opts.BeforeCommit != nil {
		if err := opts.BeforeCommit(ctx); err != nil {
			return w.Stats(), err
		}
	}
	if err := w.restoreMarked(ctx); err != nil {
		return w.Stats(), err
	}
	if err := w.flushIndex(ctx); err != nil {
		return w.Stats(), err
	}
	if err := lease.Valid(); err != nil {
		return w.Stats(), fmt.Errorf("commit write: %w", err)
	}
	return w.Stats(), nil
}

// Stats returns the counters so far.
func (w *Writer) Stats() WriteStats {
	return WriteStats{
		BlobsNew: w.stats.new.Load(), BlobsKnown: w.stats.known.Load(),
		BytesAdded: w.stats.added.Load(), BytesStored: w.stats.stored.Load(),
		Packs: w.stats.packs.Load(), Restored: w.stats.restored.Load(),
	}
}

// Buffer returns a buffer for the chunker: most chunks fit it, and
// appending grows it for the others. Pass it to SaveBlob, which takes
// ownership and recycles it, or give it back with Recycle when the chunker
// had nothing more to put in it (a file's end): a buffer dropped there is
// a new one allocated, and zeroed, for the next file, which made a backup
// of small files mostly memory clearing (50,000 files of 4 KiB: 60 s).
func (w *Writer) Buffer() []byte {
	select {
	case b := <-w.chunkBufs:
		return b[:0]
	default:
		return make([]byte, 0, w.chunkCap)
	}
}

// Recycle takes back a chunk buffer (one from Buffer that was not passed
// to SaveBlob, or one SaveBlob is done with) for reuse, unless it is small
// (not one of ours) or has grown well past the chunker's maximum (a graph
// tier's larger chunks).
func (w *Writer) Recycle(b []byte) {
	if cap(b) < w.chunkCap || cap(b) > 2*int(w.r.cfg.Chunker.MaxSize) {
		return
	}
	select {
	case w.chunkBufs <- b[:0]:
	default:
	}
}

// newPack returns an empty pack. Spooled to a file when the backend can
// save from one; otherwise in a buffer that holds a full pack without
// growing (append would double a 16 MiB buffer to 32 MiB).
func (w *Writer) newPack() (*packBuilder, error) {
	var buf []byte
	select {
	case buf = <-w.packBufs:
	default:
	}
	if w.stream != nil {
		return newFilePack(buf[:0])
	}
	if buf == nil {
		buf = make([]byte, 0, w.r.cfg.PackSize+int(w.r.cfg.Chunker.MaxSize)+packSlack)
	}
	return &packBuilder{buf: buf[:0]}, nil
}

// packSlack covers a pack's sealed header and trailer beyond its blobs.
const packSlack = 64 << 10

func (w *Writer) recyclePack(p *packBuilder) {
	p.close()
	if p.buf == nil || (w.stream == nil && cap(p.buf) < w.r.cfg.PackSize) {
		return
	}
	select {
	case w.packBufs <- p.buf[:0]:
	default:
	}
	p.buf = nil
}

// AddBytesStored lets a caller count objects it writes itself (a snapshot)
// in the run's stats.
func (w *Writer) AddBytesStored(n int64) { w.stats.stored.Add(n) }

// Known reports whether blob id is already stored in a pack that is not
// marked for deletion, or was stored earlier in this run.
func (w *Writer) Known(id chunk.ID) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.knownLocked(id)
}

func (w *Writer) knownLocked(id chunk.ID) (bool, error) {
	if _, ok := w.pending[id]; ok {
		return true, nil
	}
	locs, err := w.idx.Lookup(id)
	if err != nil {
		return false, err
	}
	for _, l := range locs {
		if !w.marks.Marked(ObjectKey(PrefixData, l.Pack)) {
			w.reused[l.Pack] = append(w.reused[l.Pack], l.Blob)
			w.pending[id] = struct{}{}
			return true, nil
		}
	}
	return false, nil
}

// SaveBlob stores data as blob id of type t unless the repository already
// holds it. It takes ownership of data (from Buffer, or any slice the
// caller will not touch again). It returns whether the blob was known; the
// blob is durable only when WithWriter returns.
func (w *Writer) SaveBlob(ctx context.Context, t index.BlobType, id chunk.ID, data []byte) (known bool, err error) {
	w.mu.Lock()
	known, err = w.knownLocked(id)
	if err == nil && !known {
		w.pending[id] = struct{}{}
	}
	w.mu.Unlock()
	if err != nil || known {
		w.stats.known.Add(1)
		w.Recycle(data)
		return known, err
	}
	select {
	case w.jobs <- blobJob{id: id, t: t, data: data}:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// work compresses blobs, then seals each into the pack being filled; a
// full pack goes to the uploaders.
func (w *Writer) work(ctx context.Context) error {
	var scratch []byte
	for job := range w.jobs {
		payload, compressed := job.data, false
		if w.mode != CompressionOff && len(job.data) > 0 {
			scratch = zstdEncode(scratch[:0], job.data, w.mode)
			if len(scratch) < len(job.data) {
				payload, compressed = scratch, true
			}
		}
		pack, full, err := w.addToPack(job, payload, compressed)
		if err != nil {
			return err
		}
		w.stats.new.Add(1)
		w.stats.added.Add(int64(len(job.data)))
		w.Recycle(job.data)
		if full {
			if err := w.send(ctx, pack); err != nil {
				return err
			}
		}
	}
	return nil
}

// addToPack seals payload into the pack being filled and, when that makes
// the pack full, takes the pack out for the caller to send.
func (w *Writer) addToPack(job blobJob, payload []byte, compressed bool) (*packBuilder, bool, error) {
	w.packMu.Lock()
	defer w.packMu.Unlock()
	if w.pack == nil {
		p, err := w.newPack()
		if err != nil {
			return nil, false, err
		}
		w.pack = p
	}
	pack := w.pack
	off, n, err := pack.addSealed(w.r.crypt, payload, blobAD)
	if err != nil {
		return nil, false, err
	}
	pack.blobs = append(pack.blobs, index.Blob{ID: job.id, Type: job.t, Offset: uint32(off),
		Length: uint32(n), RawLength: uint32(len(job.data)), Compressed: compressed})
	full := pack.size >= w.r.cfg.PackSize
	if full {
		w.pack = nil
	}
	return pack, full, nil
}

func (w *Writer) send(ctx context.Context, p *packBuilder) error {
	select {
	case w.uploads <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) upload(ctx context.Context) error {
	var err error
	for p := range w.uploads {
		if err == nil {
			err = w.savePack(ctx, p)
		}
		// After a failure the rest are only released, so that no spool
		// file outlives the run.
		w.recyclePack(p) // the backend keeps no reference after Save
	}
	return err
}

// savePack seals the header, stores the pack and queues its index entries.
func (w *Writer) savePack(ctx context.Context, p *packBuilder) error {
	id, data, err := p.finish(w.r.crypt)
	if err != nil {
		return err
	}
	key := ObjectKey(PrefixData, id)
	if data != nil {
		err = w.r.be.Save(ctx, key, data)
	} else {
		err = w.stream.SaveFrom(ctx, key, p.file)
	}
	if err != nil && !errors.Is(err, backend.ErrExists) {
		return fmt.Errorf("save pack %s: %w", key, err)
	}
	w.stats.packs.Add(1)
	w.stats.stored.Add(int64(p.size))
	w.indexMu.Lock()
	w.unsaved.Packs = append(w.unsaved.Packs, index.Pack{ID: id, Blobs: p.blobs})
	w.nblobs += len(p.blobs)
	full := w.nblobs >= indexFlushBlobs
	w.indexMu.Unlock()
	if full {
		return w.flushIndex(ctx)
	}
	return nil
}

// flushIndex writes the packs saved so far to a new index object and adds
// it to the local cache.
func (w *Writer) flushIndex(ctx context.Context) error {
	w.indexMu.Lock()
	f := w.unsaved
	w.unsaved, w.nblobs = index.File{}, 0
	w.indexMu.Unlock()
	if len(f.Packs) == 0 {
		return nil
	}
	id, n, err := w.r.SaveJSON(ctx, PrefixIndex, &f)
	if err != nil {
		return err
	}
	w.stats.stored.Add(int64(n))
	return w.idx.Add(id, &f)
}

// restoreMarked implements SPEC section 8's re-check: if a pack this run
// reused has been marked for deletion since the run began, its blobs are
// copied into a new pack before the run commits.
func (w *Writer) restoreMarked(ctx context.Context) error {
	newly, err := w.r.RefreshMarks(ctx, w.marks)
	if err != nil {
		return err
	}
	if len(newly) == 0 {
		return nil
	}
	marked := make(map[string]bool, len(newly))
	for _, k := range newly {
		marked[k] = true
	}
	pack := &packBuilder{}
	for packID, blobs := range w.reused {
		if !marked[ObjectKey(PrefixData, packID)] {
			continue
		}
		for _, b := range blobs {
			plain, err := w.r.loadFrom(ctx, index.Location{Pack: packID, Blob: b}, nil)
			if err != nil {
				return fmt.Errorf("store again blob %s of marked pack %s: %w", b.ID.Short(), packID.Short(), err)
			}
			payload, compressed := plain, false
			if w.mode != CompressionOff && len(plain) > 0 {
				if z := zstdEncode(nil, plain, w.mode); len(z) < len(plain) {
					payload, compressed = z, true
				}
			}
			start := len(pack.buf)
			pack.buf = w.r.crypt.seal(pack.buf, payload, blobAD)
			pack.blobs = append(pack.blobs, index.Blob{ID: b.ID, Type: b.Type, Offset: uint32(start),
				Length: uint32(len(pack.buf) - start), RawLength: b.RawLength, Compressed: compressed})
			w.stats.restored.Add(1)
			if len(pack.buf) >= w.r.cfg.PackSize {
				if err := w.savePack(ctx, pack); err != nil {
					return err
				}
				pack = &packBuilder{}
			}
		}
	}
	if len(pack.blobs) > 0 {
		return w.savePack(ctx, pack)
	}
	return nil
}
