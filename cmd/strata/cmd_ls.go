package main

import (
	"context"
	"path"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

func newLsCommand() *command {
	var long, recursive bool
	return &command{
		name: "ls", args: "[flags] SNAPSHOT [PATH]", short: "list files in a snapshot",
		long: `Lists the files of a snapshot, recursively below PATH (default: everything).
With --json the first line is the snapshot and every further line one node.`,
		examples: []string{"strata ls latest", "strata ls latest /var/lib/graph/export --long", "strata ls 1a2b3c4d --json"},
		setup: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&long, "long", "l", false, "show mode, size and time")
			fs.BoolVar(&recursive, "recursive", true, "descend into directories")
		},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("ls: want SNAPSHOT [PATH], got %d argument(s)", len(args))
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				e, err := snapshot.Find(ctx, r, args[0], snapshot.Filter{})
				if err != nil {
					return err
				}
				if t.json {
					m := snapshotJSON(e)
					m["message_type"] = "snapshot"
					if err := t.printJSON(m); err != nil {
						return err
					}
				}
				if e.Tree == nil {
					return nil
				}
				start, root := "/", *e.Tree
				if len(args) == 2 {
					start = path.Clean("/" + args[1])
					n, err := snapshot.FindNode(ctx, r, *e.Tree, start)
					if err != nil {
						return err
					}
					// Like restic: the path itself, then what is below it.
					if err := printNode(t, start, n, long); err != nil || n.Type != snapshot.NodeDir || n.Subtree == nil {
						return err
					}
					root = *n.Subtree
				}
				return snapshot.Walk(ctx, r, root, start, func(p string, n *snapshot.Node) error {
					if err := printNode(t, p, n, long); err != nil {
						return err
					}
					if !recursive && n.Type == snapshot.NodeDir {
						return snapshot.ErrSkipDir
					}
					return nil
				})
			})
		},
	}
}

// lsMode renders a node's type and mode as ls -l does ("drwxr-sr-t").
func lsMode(n *snapshot.Node) string {
	b := []byte("-rwxrwxrwx")
	switch n.Type {
	case snapshot.NodeDir:
		b[0] = 'd'
	case snapshot.NodeSymlink:
		b[0] = 'l'
	}
	for i := 0; i < 9; i++ {
		if n.Mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(pos int, bit snapshot.Mode, set, unset byte) {
		if n.Mode&bit != 0 {
			if b[pos] == 'x' {
				b[pos] = set
			} else {
				b[pos] = unset
			}
		}
	}
	special(3, 0o4000, 's', 'S')
	special(6, 0o2000, 's', 'S')
	special(9, 0o1000, 't', 'T')
	return string(b)
}

func printNode(t *terminal, p string, n *snapshot.Node, long bool) error {
	if t.json {
		return t.printJSON(map[string]any{"message_type": "node", "name": n.Name, "type": n.Type, "path": p,
			"size": n.Size, "mode": uint32(n.Mode), "permissions": lsMode(n), "mtime": n.ModTime.Format(time.RFC3339Nano),
			"uid": n.UID, "gid": n.GID, "linktarget": n.LinkTarget})
	}
	if !long {
		t.printf("%s\n", p)
		return nil
	}
	suffix := ""
	if n.LinkTarget != "" {
		suffix = " -> " + n.LinkTarget
	}
	t.printf("%s %5d %5d %12d %s %s%s\n", lsMode(n), n.UID, n.GID, n.Size, n.ModTime.Local().Format("2006-01-02 15:04:05"), p, suffix)
	return nil
}
