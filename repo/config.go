package repo

import (
	"encoding/hex"
	"fmt"

	"github.com/strata-backup/strata/chunk"
)

// FormatVersion is the repository format this code writes and reads.
const FormatVersion = 1

// DefaultPackSize is the target size of a pack: large enough that object
// stores see few requests, small enough that a repack copies little.
const DefaultPackSize = 16 << 20

// Compression modes.
const (
	CompressionOff  = "off"
	CompressionAuto = "auto" // zstd fastest; stored raw when it does not shrink
	CompressionMax  = "max"  // zstd at a higher level
)

// Config is the repository's config object (stored encrypted under "config").
type Config struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	// Chunker holds the default chunking parameters (and the repository's
	// random polynomial). Graph tiers may override the bounds per tier; the
	// polynomial is shared.
	Chunker     chunk.Params `json:"chunker"`
	PackSize    int          `json:"pack_size"`
	Compression string       `json:"compression"`
}

// Validate checks a config read from storage or given to Init.
func (c *Config) Validate() error {
	if c.Version != FormatVersion {
		return fmt.Errorf("validate config: repository format version %d is not supported (this strata reads version %d)", c.Version, FormatVersion)
	}
	if _, err := hex.DecodeString(c.ID); err != nil || len(c.ID) != 64 {
		return fmt.Errorf("validate config: bad repository id %q", c.ID)
	}
	if err := c.Chunker.Validate(); err != nil {
		return fmt.Errorf("validate config: %w", err)
	}
	if c.PackSize < 1<<16 || c.PackSize > 1<<30 {
		return fmt.Errorf("validate config: pack size %d outside 64 KiB..1 GiB", c.PackSize)
	}
	switch c.Compression {
	case CompressionOff, CompressionAuto, CompressionMax:
	default:
		return fmt.Errorf("validate config: unknown compression %q", c.Compression)
	}
	return nil
}
