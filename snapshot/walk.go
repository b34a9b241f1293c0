package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/strata-backup/strata/chunk"
	"github.com/strata-backup/strata/repo"
)

// ErrPathNotFound means a path is not in the snapshot.
var ErrPathNotFound = errors.New("path not found in snapshot")

// Walk calls fn for every node below tree id in depth-first name order, with
// the node's path (dir + name). Returning ErrSkipDir from fn for a directory
// skips its contents.
func Walk(ctx context.Context, r *repo.Repository, id chunk.ID, dir string, fn func(p string, n *Node) error) error {
	tree, err := LoadTree(ctx, r, id)
	if err != nil {
		return err
	}
	for _, n := range tree.Nodes {
		p := path.Join(dir, n.Name)
		err := fn(p, n)
		if errors.Is(err, ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if n.Type == NodeDir && n.Subtree != nil {
			if err := Walk(ctx, r, *n.Subtree, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErrSkipDir tells Walk not to descend.
var ErrSkipDir = errors.New("skip directory")

// FindNode returns the node at p (absolute, slash-separated) in the tree
// rooted at root. "/" returns a synthetic directory node for the root.
func FindNode(ctx context.Context, r *repo.Repository, root chunk.ID, p string) (*Node, error) {
	cur := &Node{Name: "/", Type: NodeDir, Subtree: &root, Mode: 0o755}
	for _, c := range splitPath(p) {
		if cur.Type != NodeDir || cur.Subtree == nil {
			return nil, fmt.Errorf("find %s: %w", p, ErrPathNotFound)
		}
		t, err := LoadTree(ctx, r, *cur.Subtree)
		if err != nil {
			return nil, err
		}
		if cur = t.Find(c); cur == nil {
			return nil, fmt.Errorf("find %s: %w", p, ErrPathNotFound)
		}
	}
	return cur, nil
}

// WriteContent writes a file node's content to w in order, fetching up to
// ahead blobs concurrently so a pipe consumer is never starved by latency.
func WriteContent(ctx context.Context, r *repo.Repository, n *Node, w io.Writer, ahead int) error {
	if ahead < 1 {
		ahead = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	queue := make(chan chan result, ahead)
	// Written blobs' buffers go back to the loads: a graph tier's restore
	// otherwise allocates its whole size again, a megabyte at a time, and
	// the collector sweeps it. (io.Writer must not keep p.) At most
	// ahead+1 buffers exist, as many as loads can be under way (queued,
	// and the one being written); past that a load waits for a written
	// one. Taking a free buffer only when one happened to be back made
	// the reuse depend on timing: on a loaded machine most loads found
	// none and allocated.
	free := make(chan []byte, ahead+1)
	go func() {
		defer close(queue)
		made := 0
		for _, id := range n.Content {
			// The buffer first: a load queued before it has one would be
			// left unstarted if the wait for it ended in a cancel, and the
			// writer would wait for that load forever.
			var buf []byte
			if made < ahead+1 {
				select {
				case buf = <-free:
				default:
					buf, made = r.BlobBuffer(), made+1
				}
			} else {
				select {
				case buf = <-free:
				case <-ctx.Done():
					return
				}
			}
			ch := make(chan result, 1)
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
			go func() {
				data, err := r.LoadBlob(ctx, id, buf)
				ch <- result{data, err}
			}()
		}
	}()
	for ch := range queue {
		res := <-ch
		if res.err != nil {
			return res.err
		}
		if _, err := w.Write(res.data); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		free <- res.data // never blocks: it has room for every buffer
	}
	return ctx.Err()
}

// Dump writes the file at p to w, or a tar archive of the directory at p.
func Dump(ctx context.Context, r *repo.Repository, sn *Snapshot, p string, w io.Writer) error {
	if sn.Tree == nil {
		return fmt.Errorf("dump %s: %w", p, ErrPathNotFound)
	}
	n, err := FindNode(ctx, r, *sn.Tree, p)
	if err != nil {
		return err
	}
	switch n.Type {
	case NodeFile:
		return WriteContent(ctx, r, n, w, 4)
	case NodeDir:
		tw := tar.NewWriter(w)
		err := Walk(ctx, r, *n.Subtree, "", func(rel string, c *Node) error {
			hdr := &tar.Header{Name: rel, Mode: int64(c.Mode), ModTime: c.ModTime, Uid: int(c.UID), Gid: int(c.GID)}
			switch c.Type {
			case NodeDir:
				hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
			case NodeSymlink:
				hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, c.LinkTarget
			default:
				hdr.Typeflag, hdr.Size = tar.TypeReg, int64(c.Size)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("write tar: %w", err)
			}
			if c.Type == NodeFile {
				return WriteContent(ctx, r, c, tw, 4)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tw.Close()
	}
	return fmt.Errorf("dump %s: a %s cannot be dumped", p, n.Type)
}
