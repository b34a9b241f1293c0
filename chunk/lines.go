package chunk

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// LineChunker cuts a stream of lines into chunks that end where a line
// ends, for streams whose unit is the line (a graph tier's canonical
// records, one a line). Rabin fingerprinting looks for boundaries in every
// byte because an opaque file has no better place to cut; a record stream
// has one, and deciding once per line costs a hash of the line instead of
// a rolling-hash step per byte (restic/chunker runs at ~550 MB/s a core,
// this at several GB/s). Chunks end at line ends, so no record straddles
// two blobs.
//
// The rule mirrors content-defined chunking with lines as the unit: once a
// chunk holds MinSize bytes, a line ends it with probability
// len(line)/2^AverageBits, decided by a keyed pseudo-random function of the
// line's bytes, so the mean chunk is about MinSize + 2^AverageBits bytes as
// with the byte-level chunker. A line decides only for itself: an inserted,
// removed or edited record moves no boundary but its own, and the chunks
// after the next boundary dedupe as before. A chunk reaching MaxSize is
// cut there, even inside a line. The decisions depend on the key (derived
// from the master key), so chunk sizes do not reveal content to someone
// without it, as with restic's secret polynomial.
type LineChunker struct {
	p      Params
	prf    cipher.Block
	buffer func() []byte            // a fresh chunk buffer
	emit   func(chunk []byte) error // takes ownership of chunk
	buf    []byte
	start  int // where the unfinished line begins in buf
	err    error
	blk    [16]byte // cutsAfter's block: a local would escape to the heap through prf
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewLineChunker returns a LineChunker with p's bounds (its polynomial is
// not used) and the cut key key. buffer returns an empty buffer for the
// next chunk (appending grows it as needed); emit receives each chunk and
// owns it from then on.
func NewLineChunker(p Params, key [32]byte, buffer func() []byte, emit func([]byte) error) *LineChunker {
	prf, err := aes.NewCipher(key[:])
	if err != nil {
		panic(fmt.Sprintf("aes: %v", err)) // only for a bad key size
	}
	return &LineChunker{p: p, prf: prf, buffer: buffer, emit: emit, buf: buffer()}
}

// Write adds bytes of the stream; lines may span calls.
func (c *LineChunker) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n := len(p)
	for len(p) > 0 {
		room := int(c.p.MaxSize) - len(c.buf)
		i := bytes.IndexByte(p, '\n')
		if i < 0 || i >= room {
			// No line end before the chunk is full: take what fits and
			// cut at MaxSize if it is full.
			k := min(len(p), room)
			c.buf = append(c.buf, p[:k]...)
			p = p[k:]
			if len(c.buf) >= int(c.p.MaxSize) {
				if err := c.cut(); err != nil {
					return n - len(p), err
				}
			}
			continue
		}
		c.buf = append(c.buf, p[:i+1]...)
		p = p[i+1:]
		line := c.buf[c.start:]
		if len(c.buf) >= int(c.p.MinSize) && c.cutsAfter(line) {
			if err := c.cut(); err != nil {
				return n - len(p), err
			}
			continue
		}
		c.start = len(c.buf)
	}
	return n, nil
}

// WriteLine adds line and a '\n' after it: Write(line + "\n") without the
// copy, and without looking for line ends inside line (a caller whose
// lines hold none, as canonical records do, gets the same chunks).
func (c *LineChunker) WriteLine(line []byte) error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf)+len(line)+1 > int(c.p.MaxSize) {
		if _, err := c.Write(line); err != nil {
			return err
		}
		_, err := c.Write(newline)
		return err
	}
	c.buf = append(c.buf, line...)
	c.buf = append(c.buf, '\n')
	if len(c.buf) >= int(c.p.MinSize) && c.cutsAfter(c.buf[c.start:]) {
		return c.cut()
	}
	c.start = len(c.buf)
	return nil
}

var newline = []byte{'\n'}

// Close emits the last chunk. It does not close anything else.
func (c *LineChunker) Close() error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf) > 0 {
		return c.cut()
	}
	return nil
}

func (c *LineChunker) cut() error {
	b := c.buf
	c.buf, c.start = c.buffer(), 0
	if err := c.emit(b); err != nil {
		c.err = err
		return err
	}
	return nil
}

// cutsAfter decides whether a chunk ends after line (with its '\n'): with
// probability len(line)/2^AverageBits, through AES under the cut key of
// the line's CRC-32C and length. The CRC only spreads the line over the
// block; the key makes the decisions unpredictable without it.
func (c *LineChunker) cutsAfter(line []byte) bool {
	if len(line) >= 1<<c.p.AverageBits {
		return true
	}
	blk := c.blk[:]
	binary.LittleEndian.PutUint32(blk[0:4], crc32.Checksum(line, castagnoli))
	binary.LittleEndian.PutUint64(blk[4:12], uint64(len(line)))
	clear(blk[12:])
	c.prf.Encrypt(blk, blk)
	return binary.LittleEndian.Uint64(blk[:8]) < uint64(len(line))<<(64-c.p.AverageBits)
}
