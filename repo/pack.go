package repo

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
)

// Pack layout (docs/design.md has the byte-level description):
//
//	blob_0 ‖ … ‖ blob_n-1 ‖ sealed header ‖ header length (uint32 LE)
//
// Each blob is sealed on its own (nonce ‖ ciphertext ‖ tag), so one can be
// read with a single range request. The header lists, for each blob in
// order, a 41-byte entry: flags (blob type, high bit = zstd) ‖ stored length
// (uint32 LE) ‖ plaintext length (uint32 LE) ‖ blob id (32 bytes). Offsets
// are implied by the order; the index repeats them so readers need not fetch
// headers.
const (
	headerEntrySize = 1 + 4 + 4 + chunk.IDSize
	packHeaderAD    = "pack header"
	blobAD          = "" // blobs are bound to their id by hashing the plaintext
	// maxHeaderLen bounds what a reader believes a pack's trailer says.
	maxHeaderLen = 16 << 20
)

// packBuilder accumulates sealed blobs into one pack: in memory, or, when
// the backend can save from a stream, in an unlinked temporary file, so a
// backup holds no whole pack in memory (the file stays in the page cache,
// which the kernel can reclaim).
type packBuilder struct {
	buf   []byte   // the pack so far (memory), or the blob being added (file)
	file  *os.File // nil in memory
	hash  hash.Hash
	size  int // bytes of the pack so far
	blobs []index.Blob
}

// newFilePack returns an empty pack spooled to a file in the temporary
// directory. The file is unlinked at once: it never outlives the process.
func newFilePack(buf []byte) (*packBuilder, error) {
	f, err := os.CreateTemp("", "strata-pack-*")
	if err != nil {
		return nil, fmt.Errorf("create pack spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("create pack spool: %w", err)
	}
	return &packBuilder{buf: buf, file: f, hash: chunk.NewObjectHash()}, nil
}

// addSealed seals payload with ad and appends it, returning its offset and
// stored length.
func (p *packBuilder) addSealed(c *crypter, payload []byte, ad string) (offset, n int, err error) {
	if p.file == nil {
		offset = len(p.buf)
		p.buf = c.seal(p.buf, payload, ad)
		p.size = len(p.buf)
		return offset, p.size - offset, nil
	}
	p.buf = c.seal(p.buf[:0], payload, ad)
	if _, err := p.file.Write(p.buf); err != nil {
		return 0, 0, fmt.Errorf("write pack spool: %w", err)
	}
	p.hash.Write(p.buf)
	offset = p.size
	p.size += len(p.buf)
	return offset, len(p.buf), nil
}

// finish appends the sealed header and trailer. In memory it returns the
// pack's bytes; spooled, it returns nil and leaves the file at its start.
func (p *packBuilder) finish(c *crypter) (chunk.ID, []byte, error) {
	hdr := make([]byte, 0, len(p.blobs)*headerEntrySize)
	for _, b := range p.blobs {
		hdr = appendHeaderEntry(hdr, b)
	}
	if p.file == nil {
		start := len(p.buf)
		p.buf = c.seal(p.buf, hdr, packHeaderAD)
		p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(p.buf)-start))
		p.size = len(p.buf)
		return chunk.ObjectID(p.buf), p.buf, nil
	}
	tail := c.seal(p.buf[:0], hdr, packHeaderAD)
	tail = binary.LittleEndian.AppendUint32(tail, uint32(len(tail)))
	p.buf = tail
	if _, err := p.file.Write(tail); err != nil {
		return chunk.ID{}, nil, fmt.Errorf("write pack spool: %w", err)
	}
	p.hash.Write(tail)
	p.size += len(tail)
	if _, err := p.file.Seek(0, io.SeekStart); err != nil {
		return chunk.ID{}, nil, fmt.Errorf("rewind pack spool: %w", err)
	}
	var id chunk.ID
	p.hash.Sum(id[:0])
	return id, nil, nil
}

// close releases the spool file, if any.
func (p *packBuilder) close() {
	if p.file != nil {
		p.file.Close()
		p.file = nil
	}
}

func appendHeaderEntry(dst []byte, b index.Blob) []byte {
	flags := byte(b.Type)
	if b.Compressed {
		flags |= 0x80
	}
	dst = append(dst, flags)
	dst = binary.LittleEndian.AppendUint32(dst, b.Length)
	dst = binary.LittleEndian.AppendUint32(dst, b.RawLength)
	return append(dst, b.ID[:]...)
}

// parsePackHeader decodes the sealed header found at the end of a pack of
// packSize bytes. tail must hold at least the last headerLen+4 bytes.
func (r *Repository) parsePackHeader(tail []byte, packSize int64) ([]index.Blob, error) {
	if len(tail) < 4 {
		return nil, fmt.Errorf("parse pack header: pack too short: %w", ErrCorrupt)
	}
	hlen := int64(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if hlen > maxHeaderLen || hlen+4 > packSize || hlen+4 > int64(len(tail)) {
		return nil, fmt.Errorf("parse pack header: header length %d does not fit: %w", hlen, ErrCorrupt)
	}
	sealed := tail[int64(len(tail))-4-hlen : len(tail)-4]
	hdr, err := r.crypt.open(nil, sealed, packHeaderAD)
	if err != nil {
		return nil, fmt.Errorf("parse pack header: %w", err)
	}
	if len(hdr)%headerEntrySize != 0 {
		return nil, fmt.Errorf("parse pack header: %d bytes is not a whole number of entries: %w", len(hdr), ErrCorrupt)
	}
	blobsEnd := packSize - 4 - hlen
	var off int64
	blobs := make([]index.Blob, 0, len(hdr)/headerEntrySize)
	for e := hdr; len(e) > 0; e = e[headerEntrySize:] {
		b := index.Blob{
			Type:       index.BlobType(e[0] & 0x7f),
			Compressed: e[0]&0x80 != 0,
			Length:     binary.LittleEndian.Uint32(e[1:]),
			RawLength:  binary.LittleEndian.Uint32(e[5:]),
			Offset:     uint32(off),
		}
		copy(b.ID[:], e[9:])
		if b.Type > index.TreeBlob {
			return nil, fmt.Errorf("parse pack header: blob %s: unknown type %d: %w", b.ID.Short(), b.Type, ErrCorrupt)
		}
		off += int64(b.Length)
		if off > blobsEnd {
			return nil, fmt.Errorf("parse pack header: blobs overrun the header: %w", ErrCorrupt)
		}
		blobs = append(blobs, b)
	}
	if off != blobsEnd {
		return nil, fmt.Errorf("parse pack header: %d bytes of blobs, header accounts for %d: %w", blobsEnd, off, ErrCorrupt)
	}
	return blobs, nil
}

// openBlob decrypts and decompresses one stored blob and checks its id.
//
// sealed is decrypted in place (it is scratch to the caller), and the
// plaintext always lands in dst's storage when it fits, so a caller that
// passes its previous result back reuses one buffer for every blob.
func (r *Repository) openBlob(dst []byte, b index.Blob, sealed []byte) ([]byte, error) {
	payload, err := r.crypt.openInPlace(sealed, blobAD)
	if err != nil {
		return nil, err
	}
	if dst != nil && cap(dst) < int(b.RawLength) {
		// A caller that reuses dst gets room for most chunks at once (the
		// writer's chunk buffer size), so it stops allocating after its
		// first few blobs instead of growing dst in steps. One that passes
		// nil (a tree, a single blob) gets what the blob needs.
		grown := max(r.chunkBufCap(), min(2*cap(dst), int(r.cfg.Chunker.MaxSize)))
		dst = make([]byte, 0, max(int(b.RawLength), grown))
	}
	var plain []byte
	if b.Compressed {
		if plain, err = zstdDecode(dst[:0], payload, int(b.RawLength)); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
	} else {
		if len(payload) != int(b.RawLength) {
			return nil, fmt.Errorf("blob length %d, index says %d: %w", len(payload), b.RawLength, ErrCorrupt)
		}
		plain = append(dst[:0], payload...)
	}
	if r.hasher.Sum(plain) != b.ID {
		return nil, fmt.Errorf("plaintext does not hash to blob id: %w", ErrCorrupt)
	}
	return plain, nil
}
