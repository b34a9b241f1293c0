package chunk

import (
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Params are the content-defined chunking settings. The repository config
// holds the defaults and the polynomial; version 1 also lets each graph tier
// carry its own bounds (graph bases want larger chunks than files).
type Params struct {
	Polynomial Pol  `json:"polynomial"`
	MinSize    uint `json:"min_size"`
	MaxSize    uint `json:"max_size"`
	// AverageBits: a boundary is cut where the low AverageBits bits of the
	// rolling hash are zero, so the mean chunk is about 2^AverageBits bytes.
	AverageBits int `json:"average_bits"`
}

// Pol is a chunker polynomial. It is written as a hex string in JSON:
// values this large lose precision in JavaScript and older jq.
type Pol uint64

// MarshalText encodes the polynomial as hex.
func (p Pol) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("%x", uint64(p))), nil }

// UnmarshalText decodes a hex polynomial.
func (p *Pol) UnmarshalText(b []byte) error {
	var v uint64
	if _, err := fmt.Sscanf(string(b), "%x", &v); err != nil || len(b) == 0 || len(b) > 16 {
		return fmt.Errorf("parse chunker polynomial %q: want hex", b)
	}
	*p = Pol(v)
	return nil
}

// DefaultParams returns restic's settings (512 KiB – 8 MiB, ~1 MiB mean) with
// polynomial pol.
func DefaultParams(pol uint64) Params {
	return Params{Polynomial: Pol(pol), MinSize: chunker.MinSize, MaxSize: chunker.MaxSize, AverageBits: 20}
}

// Validate checks that the parameters can drive the chunker.
func (p Params) Validate() error {
	pol := chunker.Pol(p.Polynomial)
	switch {
	case pol.Deg() != 53 || !pol.Irreducible():
		return fmt.Errorf("validate chunker params: polynomial %#x is not an irreducible polynomial of degree 53", p.Polynomial)
	case p.MinSize < window || p.MaxSize < p.MinSize:
		// Below its 64-byte window restic/chunker never starts a chunk's
		// fingerprint (it waits MinSize-64 bytes, an underflow) and returns
		// the whole stream as one chunk, past MaxSize.
		return fmt.Errorf("validate chunker params: need %d <= min (%d) <= max (%d)", window, p.MinSize, p.MaxSize)
	case p.AverageBits < 10 || p.AverageBits > 26:
		return fmt.Errorf("validate chunker params: average bits %d outside 10..26", p.AverageBits)
	}
	return nil
}

// RandomPolynomial returns a random irreducible polynomial of degree 53, one
// per repository, so chunk boundaries do not leak content across repositories.
func RandomPolynomial() (uint64, error) {
	p, err := chunker.RandomPolynomial()
	if err != nil {
		return 0, fmt.Errorf("generate chunker polynomial: %w", err)
	}
	return uint64(p), nil
}

// Chunker cuts a stream into content-defined chunks, at exactly the
// boundaries restic/chunker cuts with the same parameters (see rabin.go for
// how it finds them faster). It reads straight into the caller's buffer;
// only the bytes read past a cut are copied, to the front of the next one.
type Chunker struct {
	rd   io.Reader
	min  int
	max  int
	mask uint64
	tab  *rabinTables
	left []byte // read past the last cut, not returned yet
	eof  bool
}

// readBlock is how much Next reads at a time, as restic/chunker does.
const readBlock = 512 << 10

// NewChunker returns a Chunker reading rd, with parameters that pass
// Validate.
func NewChunker(rd io.Reader, p Params) *Chunker {
	return &Chunker{rd: rd, min: int(p.MinSize), max: int(p.MaxSize), mask: 1<<uint(p.AverageBits) - 1,
		tab: tablesFor(chunker.Pol(p.Polynomial))}
}

// Next returns the next chunk, reusing buf (which should have capacity
// MaxSize to avoid allocation). The returned slice aliases buf. At the end of
// the stream it returns io.EOF.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	buf = c.grow(buf[:0], len(c.left))
	n := copy(buf, c.left)
	c.left = c.left[:0]
	from := c.min - 1 // the first byte after which a cut may fall
	for {
		// Search what is held, then decide: a cut, MaxSize, the end of
		// the stream, or another read.
		cut := -1
		if hi := min(n, c.max-1); from < hi {
			if j := c.tab.firstCut(buf, from, hi, c.mask); j >= 0 {
				cut = j + 1
			}
			from = hi
		}
		switch {
		case cut >= 0:
		case n >= c.max:
			cut = c.max
		case c.eof && n == 0:
			return nil, io.EOF
		case c.eof:
			cut = n
		default:
			if n == len(buf) {
				buf = c.grow(buf[:n], min(n+readBlock, c.max)) // full, no cut yet
			}
			k, err := io.ReadFull(c.rd, buf[n:min(n+readBlock, c.max, len(buf))])
			n += k
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				c.eof = true
			} else if err != nil {
				return nil, err
			}
			continue
		}
		c.left = append(c.left, buf[cut:n]...)
		return buf[:cut], nil
	}
}

// grow returns buf, its contents kept, resliced to its capacity, which is at
// least want: like append, it reallocates only when a chunk outgrows the
// buffer (callers' buffers are sized for common chunks, not MaxSize).
func (c *Chunker) grow(buf []byte, want int) []byte {
	if want <= cap(buf) {
		return buf[:cap(buf)]
	}
	nb := make([]byte, min(max(want, 2*cap(buf)), max(c.max, want)))
	copy(nb, buf)
	return nb
}
