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
	case p.MinSize == 0 || p.MaxSize < p.MinSize:
		return fmt.Errorf("validate chunker params: need 0 < min (%d) <= max (%d)", p.MinSize, p.MaxSize)
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

// Chunker cuts a stream into content-defined chunks.
type Chunker struct {
	c *chunker.Chunker
}

// NewChunker returns a Chunker reading rd.
func NewChunker(rd io.Reader, p Params) *Chunker {
	c := chunker.NewWithBoundaries(rd, chunker.Pol(p.Polynomial), p.MinSize, p.MaxSize)
	c.SetAverageBits(p.AverageBits)
	return &Chunker{c: c}
}

// Next returns the next chunk, reusing buf (which should have capacity
// MaxSize to avoid allocation). The returned slice aliases buf. At the end of
// the stream it returns io.EOF.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	ch, err := c.c.Next(buf)
	if err != nil {
		return nil, err
	}
	return ch.Data, nil
}
