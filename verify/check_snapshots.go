package verify

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/index"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

// Snapshots: every tree and blob a snapshot needs.

// checkSnapshots walks every snapshot's trees (plain paths and tiers), each
// distinct tree once: every tree must load and decode, every file's blobs
// must be indexed in a pack that is not known damaged, and a file's size
// must be the sum of its blobs.
func (c *checker) checkSnapshots(ctx context.Context) error {
	c.progress.Stage("snapshots", len(c.snaps), 0)
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
