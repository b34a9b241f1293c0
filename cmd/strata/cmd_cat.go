package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/strata-backup/strata/backend"
	"github.com/strata-backup/strata/repo"
	"github.com/strata-backup/strata/snapshot"
)

func newCatCommand() *command {
	return &command{
		name: "cat", args: "config | snapshot ID | index ID | key ID | lock ID | deletion ID", short: "print a repository object as JSON (decrypted)",
		examples: []string{"strata cat config", "strata cat snapshot latest", "strata cat index 1a2b3c4d"},
		run: func(ctx context.Context, g *globals, t *terminal, args []string) error {
			if len(args) == 0 {
				return usagef("cat: want config, snapshot ID, index ID, key ID, lock ID or deletion ID")
			}
			return g.withRepo(ctx, t, func(r *repo.Repository) error {
				plain, err := catObject(ctx, r, args)
				if err != nil {
					return err
				}
				var out bytes.Buffer
				if err := json.Indent(&out, plain, "", "  "); err != nil {
					return fmt.Errorf("cat %s: %w", args[0], err)
				}
				out.WriteByte('\n')
				_, err = t.stdout.Write(out.Bytes())
				return err
			})
		},
	}
}

func catObject(ctx context.Context, r *repo.Repository, args []string) ([]byte, error) {
	kind := args[0]
	if kind == "config" {
		if len(args) != 1 {
			return nil, usagef("cat config takes no ID")
		}
		return r.LoadConfigPlain(ctx)
	}
	if len(args) != 2 {
		return nil, usagef("cat %s: want one ID", kind)
	}
	prefixes := map[string]string{"index": repo.PrefixIndex, "lock": repo.PrefixLocks, "deletion": repo.PrefixDeletions,
		"snapshot": repo.PrefixSnapshots, "policy": repo.PrefixPolicy, "verification": repo.PrefixVerifications, "drill": repo.PrefixDrills}
	switch kind {
	case "snapshot":
		e, err := snapshot.Find(ctx, r, args[1], snapshot.Filter{})
		if err != nil {
			return nil, err
		}
		return r.LoadObject(ctx, repo.PrefixSnapshots, e.ID)
	case "key":
		id, err := r.FindObject(ctx, "keys", args[1])
		if err != nil {
			return nil, err
		}
		return backend.LoadAll(ctx, r.Backend(), "keys/"+id.String())
	}
	prefix, ok := prefixes[kind]
	if !ok {
		return nil, usagef("cat: unknown object kind %q (want config, snapshot, index, key, lock, deletion, policy, verification or drill)", kind)
	}
	id, err := r.FindObject(ctx, prefix, args[1])
	if err != nil {
		return nil, err
	}
	return r.LoadObject(ctx, prefix, id)
}
