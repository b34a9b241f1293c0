package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

// ErrBlobNotFound means no index entry names the blob.
var ErrBlobNotFound = errors.New("blob not in index")

// LoadBlob returns the plaintext of blob id, appended to dst[:0]. It checks
// authentication and that the plaintext hashes to id. When a blob has more
// than one copy and one is damaged, the next is tried; the error names the
// pack of the last copy that failed.
func (r *Repository) LoadBlob(ctx context.Context, id chunk.ID, dst []byte) ([]byte, error) {
	idx, err := r.Index(ctx)
	if err != nil {
		return nil, err
	}
	locs, err := idx.Lookup(id)
	if err != nil {
		return nil, err
	}
	if len(locs) == 0 {
		return nil, fmt.Errorf("load blob %s: %w", id.Short(), ErrBlobNotFound)
	}
	var lastErr error
	for _, l := range locs {
		plain, err := r.loadFrom(ctx, l, dst)
		if err == nil {
			return plain, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// chunkBufCap is the capacity of a new chunk or blob buffer: the
// chunker's minimum plus four times its mean holds all but a few in a
// hundred chunks, where buffers of the maximum (8 MiB) for every chunk in
// flight cost tens of MiB of RSS once reuse had touched their pages.
func (r *Repository) chunkBufCap() int {
	p := r.cfg.Chunker
	return int(min(p.MaxSize, p.MinSize+4<<p.AverageBits))
}

// BlobBuffer returns an empty buffer for LoadBlob's dst that holds most
// blobs, for a caller that loads many and reuses its buffers.
func (r *Repository) BlobBuffer() []byte { return make([]byte, 0, r.chunkBufCap()) }

// LookupBlob returns the locations of blob id.
func (r *Repository) LookupBlob(ctx context.Context, id chunk.ID) ([]index.Location, error) {
	idx, err := r.Index(ctx)
	if err != nil {
		return nil, err
	}
	return idx.Lookup(id)
}

// loadFrom reads one copy of a blob.
func (r *Repository) loadFrom(ctx context.Context, l index.Location, dst []byte) ([]byte, error) {
	key := ObjectKey(PrefixData, l.Pack)
	sealed := getSealed(int(l.Length))
	defer putSealed(sealed)
	err := r.be.Load(ctx, key, int64(l.Offset), int64(l.Length), func(rd io.Reader) error {
		sealed = sealed[:l.Length]
		_, err := io.ReadFull(rd, sealed)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load blob %s from pack %s: %w", l.ID.Short(), key, err)
	}
	plain, err := r.openBlob(dst, l.Blob, sealed)
	if err != nil {
		return nil, fmt.Errorf("load blob %s from pack %s: %w", l.ID.Short(), key, err)
	}
	return plain, nil
}

// sealedBufs recycles read buffers for sealed blobs across loads (bounded,
// and unlike sync.Pool not emptied by every GC).
var sealedBufs = make(chan []byte, 16)

func getSealed(n int) []byte {
	c := 1 << 20
	select {
	case b := <-sealedBufs:
		if cap(b) >= n {
			return b[:n]
		}
		// Too small: its replacement is twice as large, so that the pool
		// settles on buffers that fit the larger blobs rather than
		// trading one small buffer for another at every load.
		c = 2 * cap(b)
	default:
	}
	return make([]byte, n, max(n, c))
}

func putSealed(b []byte) {
	if cap(b) > 16<<20 {
		return
	}
	select {
	case sealedBufs <- b[:0]:
	default:
	}
}

// LoadPackHeader reads and decodes the header of pack id.
func (r *Repository) LoadPackHeader(ctx context.Context, id chunk.ID) ([]index.Blob, int64, error) {
	key := ObjectKey(PrefixData, id)
	fi, err := r.be.Stat(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("load pack header %s: %w", key, err)
	}
	if fi.Size < 4+Overhead {
		return nil, fi.Size, fmt.Errorf("load pack header %s: pack of %d bytes is too short: %w", key, fi.Size, ErrCorrupt)
	}
	var trailer []byte
	if err := r.be.Load(ctx, key, fi.Size-4, 4, func(rd io.Reader) error {
		trailer, err = io.ReadAll(rd)
		return err
	}); err != nil {
		return nil, fi.Size, fmt.Errorf("load pack header %s: %w", key, err)
	}
	hlen := int64(binary.LittleEndian.Uint32(trailer))
	if hlen+4 > fi.Size || hlen > maxHeaderLen {
		return nil, fi.Size, fmt.Errorf("load pack header %s: header length %d does not fit: %w", key, hlen, ErrCorrupt)
	}
	var tail []byte
	if err := r.be.Load(ctx, key, fi.Size-4-hlen, hlen+4, func(rd io.Reader) error {
		tail, err = io.ReadAll(rd)
		return err
	}); err != nil {
		return nil, fi.Size, fmt.Errorf("load pack header %s: %w", key, err)
	}
	blobs, err := r.parsePackHeader(tail, fi.Size)
	if err != nil {
		return nil, fi.Size, fmt.Errorf("load pack header %s: %w", key, err)
	}
	return blobs, fi.Size, nil
}
