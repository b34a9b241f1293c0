// Package snapshot turns files, streams and graph tiers into snapshots and
// back: the archiver (Backup), the restorer (Restore), and browsing (ls,
// dump). A snapshot is an encrypted JSON document under snapshots/ naming a
// root tree of plain paths and any number of tiers; trees are JSON blobs in
// packs, deduplicated like data.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
)

// DocVersion is the snapshot document's version within repository format 1.
const DocVersion = 1

// Tier formats.
const (
	FormatFiles = "files" // opaque bytes, restored byte-exact
	FormatGraph = "graph" // graph JSON Lines, restored semantically exact
)

// Snapshot is the plaintext of snapshots/<id>.
type Snapshot struct {
	Version  int       `json:"version"`
	Time     time.Time `json:"time"`
	Hostname string    `json:"hostname"`
	Username string    `json:"username,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	// Paths are the absolute paths backed up as plain files, and the
	// names of the tiers ("tier:NAME"), so grouping by paths also groups
	// by tier names.
	Paths []string `json:"paths"`
	// Tree is the root tree of the plain paths (absolute paths are kept
	// in full below it, as restic does).
	Tree   *chunk.ID `json:"tree,omitempty"`
	Parent *chunk.ID `json:"parent,omitempty"`
	Tiers  []Tier    `json:"tiers,omitempty"`
	// Cut is the consistent cut across tiers, when the backup recorded one.
	Cut *Cut `json:"cut,omitempty"`
	// Synthesized says the snapshot was made by snapshot synthesize from
	// another one plus the log, without the database.
	Synthesized *Synthesis `json:"synthesized,omitempty"`
	// Incomplete lists source files that could not be read: the snapshot
	// exists but does not hold them, and verify fails on it.
	Incomplete []Unreadable `json:"incomplete,omitempty"`
	Summary    *Summary     `json:"summary,omitempty"`
	Program    string       `json:"program,omitempty"`
}

// Tier is one tier of a graph captured in the snapshot.
type Tier struct {
	Name   string `json:"name"`
	Format string `json:"format"`
	Source string `json:"source,omitempty"`
	// Bytes is the size of the tier as exported (plaintext).
	Bytes         int64 `json:"bytes"`
	Nodes         int64 `json:"nodes"`
	Relationships int64 `json:"relationships"`
	// Tree holds the tier's content. A files tier is a directory tree; a
	// graph tier's tree holds "base.jsonl" (the canonical stream) and
	// "layer-NNNN.jsonl" delta layers in order.
	Tree *chunk.ID `json:"tree"`
	// Chunker overrides the repository's chunk bounds for this tier (the
	// polynomial is always the repository's).
	Chunker *chunk.Params `json:"chunker,omitempty"`
	// Layers describes the delta layers of a graph tier, oldest first.
	Layers []Layer     `json:"layers,omitempty"`
	Stats  *GraphStats `json:"stats,omitempty"`
	// CountsFrom, when set, names the snapshot whose state Nodes,
	// Relationships and Stats count: a synthesized tier keeps its base's
	// counts, since counting would read the whole graph.
	CountsFrom string    `json:"counts_from,omitempty"`
	CapturedAt time.Time `json:"captured_at"`
	LSN        *TierLSN  `json:"lsn,omitempty"`
}

// TierLSN is the log position around one tier's export, when known.
type TierLSN struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

// Layer is a record-level delta of a graph tier: the upserts and tombstones
// since an earlier snapshot's tier, sorted like the base.
type Layer struct {
	Since      chunk.ID `json:"since"`
	Upserts    int64    `json:"upserts"`
	Tombstones int64    `json:"tombstones"`
	// Detaches counts detach lines (synthesized layers only): nodes the log
	// deleted, whose relationships in older inputs the layer removes.
	Detaches int64 `json:"detaches,omitempty"`
	Bytes    int64 `json:"bytes"`
}

// GraphStats counts a graph tier per label and relationship type.
type GraphStats struct {
	Labels map[string]int64 `json:"labels,omitempty"`
	Types  map[string]int64 `json:"types,omitempty"`
}

// Cut is a consistent cut: restoring replays the log over (LSNStart, LSNEnd]
// of Generation so every tier lands on LSNEnd.
type Cut struct {
	Generation uint64 `json:"generation"`
	LSNStart   uint64 `json:"lsn_start"`
	LSNEnd     uint64 `json:"lsn_end"`
	// Checked: the integrity check and the tier statistics are those of
	// the state at the cut (the log covered it when the backup ended).
	Checked bool `json:"checked,omitempty"`
}

// Unreadable is a source file the backup could not read.
type Unreadable struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Summary is what the backup did (SPEC section 9's summary line).
type Summary struct {
	FilesNew        int64   `json:"files_new"`
	FilesChanged    int64   `json:"files_changed"`
	FilesUnmodified int64   `json:"files_unmodified"`
	DirsNew         int64   `json:"dirs_new"`
	DirsChanged     int64   `json:"dirs_changed"`
	DirsUnmodified  int64   `json:"dirs_unmodified"`
	BytesProcessed  int64   `json:"bytes_processed"`
	BytesAdded      int64   `json:"bytes_added"`
	BytesStored     int64   `json:"bytes_stored"`
	BlobsNew        int64   `json:"blobs_new"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// Entry is a snapshot with its id, as listed.
type Entry struct {
	ID chunk.ID
	*Snapshot
}

// ErrNoSnapshot means no snapshot matches.
var ErrNoSnapshot = errors.New("no matching snapshot")

// newSnapshot fills in the fields every snapshot has.
func newSnapshot(t time.Time, host string, tags []string) *Snapshot {
	sn := &Snapshot{Version: DocVersion, Time: t, Hostname: host, Tags: tags, Program: ProgramVersion}
	if sn.Time.IsZero() {
		sn.Time = time.Now()
	}
	if sn.Hostname == "" {
		sn.Hostname, _ = os.Hostname()
	}
	if u, err := user.Current(); err == nil {
		sn.Username = u.Username
	}
	return sn
}

// ProgramVersion is recorded in every snapshot.
var ProgramVersion = "strata 0.1.0"

// Load reads snapshot id.
func Load(ctx context.Context, r *repo.Repository, id chunk.ID) (*Snapshot, error) {
	var sn Snapshot
	if err := r.LoadJSON(ctx, repo.PrefixSnapshots, id, &sn); err != nil {
		return nil, err
	}
	if sn.Version != DocVersion {
		return nil, fmt.Errorf("load snapshot %s: document version %d not supported", id.Short(), sn.Version)
	}
	return &sn, nil
}

// Save writes sn and returns its id and stored size.
func Save(ctx context.Context, r *repo.Repository, sn *Snapshot) (chunk.ID, int, error) {
	return r.SaveJSON(ctx, repo.PrefixSnapshots, sn)
}

// List returns every snapshot, oldest first.
func List(ctx context.Context, r *repo.Repository) ([]Entry, error) {
	var ids []chunk.ID
	if err := r.List(ctx, repo.PrefixSnapshots, func(id chunk.ID, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := make([]Entry, 0, len(ids))
	for _, id := range ids {
		sn, err := Load(ctx, r, id)
		if errors.Is(err, backend.ErrNotFound) {
			continue // removed by a concurrent forget
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{ID: id, Snapshot: sn})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, nil
}

// Filter selects snapshots by host, tags and paths (all given must match).
type Filter struct {
	Hosts []string
	Tags  []string // each entry may be "a,b": all of a and b
	Paths []string
}

// Match reports whether sn passes f.
func (f Filter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, sn.Hostname) {
		return false
	}
	if len(f.Tags) > 0 {
		ok := false
		for _, group := range f.Tags {
			all := true
			for _, t := range strings.Split(group, ",") {
				if t != "" && !slices.Contains(sn.Tags, t) {
					all = false
				}
			}
			ok = ok || all
		}
		if !ok {
			return false
		}
	}
	for _, p := range f.Paths {
		if !slices.Contains(sn.Paths, p) {
			return false
		}
	}
	return true
}

// Find resolves "latest", a full id or a unique prefix of at least 4 hex
// digits. "latest" honours f.
func Find(ctx context.Context, r *repo.Repository, arg string, f Filter) (Entry, error) {
	if arg == "latest" {
		all, err := List(ctx, r)
		if err != nil {
			return Entry{}, err
		}
		for i := len(all) - 1; i >= 0; i-- {
			if f.Match(all[i].Snapshot) {
				return all[i], nil
			}
		}
		return Entry{}, fmt.Errorf("find snapshot latest: %w", ErrNoSnapshot)
	}
	id, err := r.FindObject(ctx, repo.PrefixSnapshots, arg)
	if errors.Is(err, backend.ErrNotFound) {
		return Entry{}, fmt.Errorf("find snapshot %q: %w", arg, ErrNoSnapshot)
	}
	if err != nil {
		return Entry{}, err
	}
	sn, err := Load(ctx, r, id)
	if errors.Is(err, backend.ErrNotFound) {
		return Entry{}, fmt.Errorf("find snapshot %q: %w", arg, ErrNoSnapshot)
	}
	if err != nil {
		return Entry{}, err
	}
	return Entry{ID: id, Snapshot: sn}, nil
}
